"""The real worker process: stopped, it loses nothing; started again, it delivers the rest."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from notifications.models import Channel, Delivery, Rule
from notifications.services import raise_notification

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def start_worker(database_env):
    env = {**os.environ, **database_env, "DEBUG": "False", "LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--queue-name", "*", "--interval", "0.1",
         "--no-startup-delay"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def wait_for(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def delivered():
    return Delivery.objects.filter(state="delivered").count()


def test_stopping_the_worker_loses_nothing(receiver, database_env):
    Channel.objects.create(name="qa", kind="discord", url=receiver.url, rules=["run_failed"])
    worker = start_worker(database_env)
    try:
        for n in range(3):
            raise_notification(Rule.RUN_FAILED, f"run:{n}", f"run {n} failed")
        assert wait_for(lambda: delivered() == 3), worker.stderr.read1().decode()
    finally:
        worker.kill()  # no graceful shutdown: as if the container died
        worker.wait()
    for n in range(3, 8):
        raise_notification(Rule.RUN_FAILED, f"run:{n}", f"run {n} failed")
    time.sleep(0.5)
    assert delivered() == 3 and len(receiver.requests) == 3  # nobody is sending now
    worker = start_worker(database_env)
    try:
        assert wait_for(lambda: delivered() == 8)
    finally:
        worker.terminate()
        worker.wait(10)
    titles = sorted(request["json"]["content"] for request in receiver.requests)
    assert titles == sorted(f"run {n} failed" for n in range(8))  # each exactly once
