"""A fresh clone after `make run`: the manage.py commands the README shows work exactly as
written, from another shell, with nothing in the environment but the .env that make wrote."""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from plumbing.devserver import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# What a clone does not have: a virtualenv (linked below), history, local data, generated files.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".venv*", ".git", ".env", "db.sqlite3*", "staticfiles", "__pycache__", ".pytest_cache",
    ".hypothesis", "node_modules", "results", "*.egg-info")


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A copy of the working tree with the virtualenv linked in and `make`'s .env written."""
    path = tmp_path_factory.mktemp("clone") / "monitor"
    shutil.copytree(ROOT, path, ignore=NOT_IN_A_CLONE, symlinks=True)
    # This checkout's virtualenv, marked installed after the copied requirements.txt was
    # written, so that make installs nothing into it.
    (path / ".venv").mkdir()
    for name in ("bin", "lib", "pyvenv.cfg"):
        (path / ".venv" / name).symlink_to(ROOT / ".venv" / name)
    (path / ".venv" / ".installed").touch()
    # Only PATH and HOME: no DEBUG, SECRET_KEY or ENV_FILE (pytest.ini's) from this process.
    environment = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
                   "LANG": "C.UTF-8"}
    subprocess.run(["make", ".env"], cwd=path, env=environment, check=True,
                   capture_output=True, timeout=60)
    return path, environment


def shell(clone, command, **extra_env):
    """`command` typed in a shell at the clone's root, as the README writes it."""
    path, environment = clone
    return subprocess.run(command, shell=True, cwd=path, env={**environment, **extra_env},
                          capture_output=True, text=True, timeout=120)


def test_make_writes_development_defaults_once(clone):
    path, _ = clone
    written = (path / ".env").read_text()
    assert "DEBUG=True\n" in written
    key = next(line for line in written.splitlines() if line.startswith("SECRET_KEY="))
    assert len(key) > len("SECRET_KEY=") + 50
    (path / ".env").write_text(written + "TIME_ZONE=Europe/Warsaw\n")  # the user's edit
    assert "is up to date" in shell(clone, "make .env").stdout
    assert (path / ".env").read_text().endswith("TIME_ZONE=Europe/Warsaw\n")


def test_readme_commands_work_as_written_after_make_run(clone):
    assert shell(clone, ".venv/bin/python manage.py migrate --noinput").returncode == 0

    created = shell(clone, ".venv/bin/python manage.py createsuperuser --noinput",
                    DJANGO_SUPERUSER_USERNAME="admin", DJANGO_SUPERUSER_EMAIL="a@example.com",
                    DJANGO_SUPERUSER_PASSWORD="a-long-password-1")
    assert created.returncode == 0, created.stderr
    assert "Superuser created successfully." in created.stdout

    project = shell(clone, ".venv/bin/python manage.py create_project Shop")
    assert project.returncode == 0, project.stderr
    assert set(json.loads(project.stdout)) == {"id", "token"}

    token = shell(clone, '.venv/bin/python manage.py machine_token create "lab rack 3" '
                         '--machine "rack-3"')
    assert token.returncode == 0, token.stderr
    assert token.stdout.startswith("tm_")
    assert "lab rack 3" in shell(clone, ".venv/bin/python manage.py machine_token list").stdout

    jobs = shell(clone, ".venv/bin/python manage.py run_job --list")
    assert jobs.returncode == 0 and "prune_old_data" in jobs.stdout, jobs.stderr

    traces = shell(clone, ".venv/bin/python manage.py send_demo_traces --count 2")
    assert "Stored 2 demo traces" in traces.stdout, traces.stderr

    # No server runs here: demo says so in one line (not that SECRET_KEY is missing).
    demo = shell(clone, ".venv/bin/python manage.py demo")
    assert demo.returncode == 1 and demo.stderr.count("\n") == 1, demo.stderr
    assert "the server at http://127.0.0.1:8000 is not reachable" in demo.stderr


def test_before_make_run_commands_refuse_without_a_secret_key_and_say_how(clone):
    path, _ = clone
    (path / ".env").rename(path / "env.kept")
    try:
        check = shell(clone, ".venv/bin/python manage.py check")
    finally:
        (path / "env.kept").rename(path / ".env")
    assert check.returncode == 1
    assert "SECRET_KEY is not set" in check.stderr and "make run" in check.stderr


def test_make_run_serves_and_demo_reports_to_it(clone):
    path, environment = clone
    port = free_port()
    server = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=path, env=environment,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        demo = shell(clone, f".venv/bin/python manage.py demo --url http://127.0.0.1:{port} "
                            "--once")
        assert demo.returncode == 0, demo.stderr
        assert "3 virtual machines reporting through the HTTP API" in demo.stdout
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C: honcho stops all three
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
