"""The waiting line in front of the ingest endpoints (tracking/ingest_queue.py), on a real
server: a burst far above what runs at once is stored whole, sent as the legacy tracker sends it
and by the legacy tracker itself in a Flask app; refusal (429 with Retry-After, nothing
stored) only when the line is full or a request waited too long."""

import contextlib
import gzip
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
from django.db import connection, transaction

from tracking.models import Project, RequestMetric
from tracking.tests.conftest import batch_event, seed_body

pytestmark = pytest.mark.integration

BURST = 250
ROOT = Path(__file__).resolve().parents[2]
SEED_TRACKER_PYTHON = ROOT / ".venv-seed-tracker" / "bin" / "python"
SEED_TRACKED_APP = Path(__file__).resolve().parent / "seed_tracker" / "flask_app.py"


class AllAtOnce:
    """Each call on a thread of its own, released together; `answers` fills as they return
    (an exception stands for its call's answer), `wait()` joins them."""

    def __init__(self, calls):
        start = threading.Barrier(len(calls))
        self.answers = [None] * len(calls)
        self.returned = []  # (seconds taken, answer), in the order they returned

        def run(index, call):
            start.wait()
            began = time.monotonic()
            try:
                answer = call()
            except requests.RequestException as error:
                answer = error
            self.answers[index] = answer
            self.returned.append((time.monotonic() - began, answer))

        self.threads = [threading.Thread(target=run, args=(i, call), daemon=True)
                        for i, call in enumerate(calls)]
        for thread in self.threads:
            thread.start()

    def wait_returned(self, count, timeout):
        deadline = time.monotonic() + timeout
        while len(self.returned) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.returned)

    def wait(self, timeout=120):
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        return self.answers


def status_of(answer):
    return getattr(answer, "status_code", answer)


def seed_post(server, project, token, **overrides):
    """One event, exactly as rigidanalytics-tracker 2.0.5 sends it: its own connection, only
    Content-Type set, no retry."""
    url = f"{server.url}/tracking/{project.public_id}"
    body = json.dumps(seed_body(token, **overrides)).encode()
    return lambda: requests.post(url, data=body, headers={"Content-Type": "application/json"},
                                 timeout=90)


def batch_post(server, token):
    body = gzip.compress(json.dumps({"events": [batch_event()]}).encode())
    return lambda: requests.post(f"{server.url}/api/tracking/ingest/", data=body, timeout=90,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Encoding": "gzip"})


@contextlib.contextmanager
def ingest_writes_held():
    """While inside, no ingest can commit: the server's ingest request holds its turn."""
    with transaction.atomic():  # SQLite: BEGIN IMMEDIATE takes the one writer's lock
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {RequestMetric._meta.db_table} IN EXCLUSIVE MODE")
        yield


def test_a_burst_of_seed_tracker_requests_is_stored_whole(asgi_server):
    project, token = Project.create_with_token("Burst")
    burst = AllAtOnce([seed_post(asgi_server, project, token,
                                 full_url=f"http://shop.example/item/{n}")
                       for n in range(BURST)])
    assert [status_of(answer) for answer in burst.wait()] == [201] * BURST
    stored = RequestMetric.objects.filter(project=project)
    assert stored.count() == BURST
    assert set(stored.values_list("path", flat=True)) == {f"/item/{n}" for n in range(BURST)}


def test_beyond_the_bound_both_endpoints_answer_429_with_retry_after(server_factory):
    """One request runs (held by a lock), three wait: the six others are refused at once, the
    three when their wait is over; only the one that ran is stored."""
    server = server_factory(TRACKING_INGEST_THREADS="1", TRACKING_INGEST_MAX_WAITING="3",
                            TRACKING_INGEST_MAX_WAIT_SECONDS="2")
    project, token = Project.create_with_token("Bounded")
    # More than the line holds of each kind, so that both endpoints are refused at once.
    calls = [seed_post(server, project, token) for _ in range(5)]
    calls += [batch_post(server, token) for _ in range(5)]
    with ingest_writes_held():
        burst = AllAtOnce(calls)
        refused = burst.wait_returned(9, timeout=30)
    statuses = sorted(status_of(answer) for answer in burst.wait())
    assert statuses[0] in (200, 201) and statuses[1:] == [429] * 9  # batch: 200, legacy route: 201
    assert RequestMetric.objects.filter(project=project).count() == 1

    at_once, waited = refused[:6], refused[6:]
    for seconds, answer in at_once:
        assert seconds < 1.5 and answer.status_code == 429
        assert answer.json()["detail"].startswith(
            "Too many ingest requests waiting in this server process: 3 "
            "(TRACKING_INGEST_MAX_WAITING)")
    # Both endpoints wait in the same line.
    assert {answer.request.path_url.startswith("/api/") for _, answer in at_once} == {True, False}
    for seconds, answer in waited:
        assert 2 <= seconds < 10 and answer.status_code == 429
        assert answer.json()["detail"] == (
            "This ingest request waited 2 seconds for its turn "
            "(TRACKING_INGEST_MAX_WAIT_SECONDS); nothing was stored, retry later.")
    for _, answer in refused:
        assert answer.json()["code"] == "overloaded"
        assert answer.headers["Content-Type"] == "application/json"
        assert 1 <= int(answer.headers["Retry-After"]) <= 60


class SeedTrackedApp:
    """seed_tracker/flask_app.py in its own process, with the seed tracker's virtualenv."""

    def __init__(self, project_id, token, backend_endpoint):
        if not SEED_TRACKER_PYTHON.exists():
            pytest.skip(f"needs the seed tracker's virtualenv {SEED_TRACKER_PYTHON.parent.parent}"
                        ": `make install-dev` builds it")
        env = {**os.environ, "RA_PROJECT_ID": project_id, "RA_PROJECT_TOKEN": token,
               "RA_BACKEND_ENDPOINT": backend_endpoint, "PYTHONUNBUFFERED": "1"}
        for name in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV"):
            env.pop(name, None)
        # A file, not a pipe: the tracker prints a line per transport it drops, and a pipe
        # nobody reads would block the app once full.
        self.output = tempfile.NamedTemporaryFile(prefix="legacy-tracked-app-", suffix=".log")
        self.process = subprocess.Popen([str(SEED_TRACKER_PYTHON), str(SEED_TRACKED_APP)], env=env,
                                        stdout=self.output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            first = Path(self.output.name).read_text(errors="replace").partition("\n")
            if first[1]:
                self.url = f"http://127.0.0.1:{json.loads(first[0])['port']}"
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the legacy-tracked app did not start:\n{self.log()[-4000:]}")

    def log(self):
        return Path(self.output.name).read_text(errors="replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.output.close()


def test_the_published_seed_tracker_loses_no_event_of_a_burst(asgi_server):
    """rigidanalytics-tracker 2.0.5, unchanged, in a Flask app, sends one event per request on
    up to 20 connections and never retries: every event it sends during a burst of requests
    to the app is answered 201 and stored, once.

    The client keeps each request's state on one object shared by all threads, so under
    concurrency it sometimes fails a request of the app itself (500) or labels an event with
    another request's view; the events it does hand to its sender are what is counted here. A
    request the app answered 200 always handed its event over."""
    project, token = Project.create_with_token("Seed tracked app")
    app = SeedTrackedApp(str(project.public_id), token, f"{asgi_server.url}/tracking/")
    # The server's access log (daphne's or uvicorn's): "POST /tracking/<id>[ HTTP/1.1]" 201
    route = re.compile(rf'"POST /tracking/{project.public_id}(?: HTTP/[\d.]+)?" (\d{{3}})')
    stored = RequestMetric.objects.filter(project=project)
    try:
        burst = AllAtOnce([
            (lambda n=n: requests.get(f"{app.url}/?n={n}", timeout=90)) for n in range(BURST)])
        handed_over = {f"n={n}" for n, answer in enumerate(burst.wait())
                       if status_of(answer) == 200}
        assert len(handed_over) >= BURST * 0.9, app.log()[-4000:]
        deadline = time.monotonic() + 90
        while stored.count() < len(handed_over) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # an event still on its way (or sent twice) arrives by now
    finally:
        app.stop()
    # The access log: one line per request the client sent, with the answer's status.
    sent = route.findall(asgi_server.output())
    assert sent and set(sent) == {"201"}
    assert stored.count() == len(sent) >= len(handed_over)
    queries = list(stored.values_list("query", flat=True))
    assert len(set(queries)) == len(queries) and handed_over <= set(queries)
