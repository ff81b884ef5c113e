"""A real tracked app (Flask or Django, served over HTTP in its own process) whose backend goes
away: connection refused, a black hole that accepts and never answers, or 503 with Retry-After.
For ten times the queue's size of requests, in one test each:

- the app's latency does not change: p50/p99 against the same app sending to a healthy receiver
  a moment before (a request path that waited on the network would take TIMEOUT = 2 s);
- its memory stays bounded: traced memory grows by less than a bound derived from QUEUE_SIZE,
  and not at all between five and ten times the queue's size;
- drops are counted (stats(): queue full, batches given up) and told to the server later;
- delivery resumes within a bounded wait once a receiver listens on the port again, and every
  request is accounted for: received + dropped = made.
"""

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from urllib.parse import quote

import pytest
from request_tracker_stub import BlackHole, StubBackend, wait_until

pytestmark = pytest.mark.integration

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
QUEUE_SIZE = 200
BATCH_SIZE = 50
TIMEOUT = 2.0
BACKOFF_MAX = 0.5
TUNING = {"QUEUE_SIZE": QUEUE_SIZE, "BATCH_SIZE": BATCH_SIZE, "FLUSH_INTERVAL": 0.05,
          "TIMEOUT": TIMEOUT, "BACKOFF_MAX": BACKOFF_MAX, "MAX_RETRIES": 6, "MAX_BATCH_AGE": 5,
          "SHUTDOWN_TIMEOUT": 0.5}
# The most a queued item may cost: a flat tuple of 15 fields whose strings come from the request
# (path, query, user agent, client IP, headers); about 0.55 KiB measured here.
ITEM_BOUND = 1024
MEMORY_SLACK = 256 * 1024  # the in-flight batch's JSON and gzip buffers, allocator noise


class TrackedApp:
    """The app process and a client that counts every request it makes (Werkzeug closes each
    connection after its answer; http.client opens the next one)."""

    def __init__(self, framework, backend_url):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(SRC)]),
               "TRACKED_FRAMEWORK": framework, "TRACKED_TRACEMALLOC": "4",
               "RA_PROJECT_ID": "outage-project", "RA_PROJECT_TOKEN": "outage-token",
               "RA_BACKEND_ENDPOINT": backend_url, "RA_TEST_TUNING": json.dumps(TUNING)}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen([sys.executable, str(TESTS / "tracked_app_server.py")],
                                        env=env, stdout=subprocess.PIPE, stderr=self.log,
                                        text=True)
        port = json.loads(self.process.stdout.readline())["port"]
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.made = 0

    def get(self, path="/"):
        self.connection.request("GET", path, headers={"User-Agent": "outage-test/1.0"})
        response = self.connection.getresponse()
        body = response.read()
        self.made += 1
        assert response.status == 200, body
        return body

    def drive(self, count, path="/"):
        """`count` requests one after the other; their latencies in seconds, sorted."""
        latencies = []
        clock = time.perf_counter
        for _ in range(count):
            started = clock()
            self.get(path)
            latencies.append(clock() - started)
        return sorted(latencies)

    def state(self, dump=None):
        """The tracker's stats and memory, as they were before this request was recorded;
        with `dump` (a path), the app also writes a tracemalloc snapshot there."""
        made_before = self.made
        answer = json.loads(self.get(f"/_tracker/?dump={quote(str(dump))}" if dump
                                     else "/_tracker/"))
        answer["made_before"] = made_before
        return answer

    def logged(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        self.connection.close()
        self.process.terminate()
        self.process.wait(10)
        self.log.close()


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def where_memory_went(old_dump, new_dump, top=8):
    """The allocation sites that grew most between two snapshots, for a failure message."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__),
              tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]
    old = tracemalloc.Snapshot.load(str(old_dump)).filter_traces(ignore)
    new = tracemalloc.Snapshot.load(str(new_dump)).filter_traces(ignore)
    lines = []
    for stat in new.compare_to(old, "traceback")[:top]:
        lines.append(f"{stat.size_diff / 1024:+.0f} KiB in {stat.count_diff:+d} blocks:")
        lines.extend("    " + line for line in stat.traceback.format(limit=4, most_recent_first=True))
    return "\n".join(lines)


def start_fault(kind, port):
    if kind == "refused":
        return None  # nothing listens on the port
    if kind == "black-hole":
        return BlackHole(port=port)
    backend = StubBackend(port=port)  # up, but answering 503 with Retry-After to everything
    backend.status = 503
    backend.retry_after = "0.3"
    return backend


@pytest.mark.parametrize("framework, fault", [
    ("flask", "refused"), ("flask", "black-hole"), ("flask", "503"), ("django", "black-hole"),
])
def test_the_tracked_app_rides_out_a_backend_outage(framework, fault, tmp_path):
    healthy = StubBackend()
    port = healthy.port
    app = TrackedApp(framework, healthy.url)
    backends = [healthy]
    try:
        # Healthy: the baseline, measured in this same test against the same process.
        app.drive(150)  # warm-up: imports, caches, the sender thread
        base = app.drive(600)
        assert healthy.wait_for(app.made, timeout=10), "the healthy receiver did not get all"

        healthy.stop()
        backends.append(start_fault(fault, port))
        dumps = {name: tmp_path / f"{name}.tracemalloc" for name in ("before", "half", "after")}
        before = app.state(dumps["before"])
        down_half = app.drive(5 * QUEUE_SIZE)
        half = app.state(dumps["half"])
        down = sorted(down_half + app.drive(5 * QUEUE_SIZE))
        after = app.state(dumps["after"])

        # Latency: no change (a request path that waited on the network would take seconds).
        ratio_p50 = percentile(down, 0.5) / percentile(base, 0.5)
        ratio_p99 = percentile(down, 0.99) / percentile(base, 0.99)
        print(f"{framework}/{fault}: p50 {percentile(base, 0.5) * 1e3:.2f} -> "
              f"{percentile(down, 0.5) * 1e3:.2f} ms, p99 {percentile(base, 0.99) * 1e3:.2f} -> "
              f"{percentile(down, 0.99) * 1e3:.2f} ms, max {down[-1] * 1e3:.1f} ms")
        assert ratio_p50 < 2.5 and ratio_p99 < 8, (ratio_p50, ratio_p99)
        assert down[-1] < TIMEOUT * 0.9

        # Memory: bounded by the queue, and flat once the queue is full (measured with no other
        # request in flight: see tracked_app_server.other_requests_done).
        assert before["alone"] and half["alone"] and after["alone"]
        growth = after["traced_bytes"] - before["traced_bytes"]
        plateau = after["traced_bytes"] - half["traced_bytes"]
        print(f"{framework}/{fault}: traced memory +{growth / 1024:.0f} KiB over "
              f"{10 * QUEUE_SIZE} requests (+{plateau / 1024:.0f} KiB over the last half); RSS "
              f"{before['rss_bytes'] >> 20} -> {after['rss_bytes'] >> 20} MiB")
        assert growth < (QUEUE_SIZE + BATCH_SIZE) * ITEM_BOUND + MEMORY_SLACK, \
            where_memory_went(dumps["before"], dumps["after"])
        # Between the two snapshots only the batch in flight may differ (about 27 KiB here);
        # an unbounded queue would add 5 × QUEUE_SIZE items, about 550 KiB.
        assert plateau < BATCH_SIZE * ITEM_BOUND + 64 * 1024, \
            where_memory_went(dumps["half"], dumps["after"])

        # Drops: counted, and the backend's failure is visible.
        stats = after["stats"]
        print(f"{framework}/{fault}: stats while down {stats}")
        assert stats["queued"] <= QUEUE_SIZE and stats["backend_failing"]
        assert stats["dropped"] >= 10 * QUEUE_SIZE - QUEUE_SIZE - BATCH_SIZE
        assert stats["dropped_queue_full"] > 0 and stats["last_error"]
        if fault == "503":
            assert stats["last_error"] == "HTTP 503"
            assert len(backends[-1].batches) == 0  # nothing stored by a failing backend

        # The backend comes back on the same port: delivery resumes within a bounded wait
        # (worst case: the attempt under way times out, one backoff, then the queue's backlog),
        # and requests made after that arrive.
        if backends[-1] is not None:
            backends[-1].stop()
        back = StubBackend(port=port)
        backends.append(back)
        came_back = time.monotonic()

        def drained():
            stats = app.state()["stats"]
            return not stats["backend_failing"] and stats["queued"] == 0

        assert wait_until(drained, timeout=TIMEOUT + BACKOFF_MAX + 3)
        resumed = time.monotonic() - came_back
        app.drive(20, "/after/")

        def arrived():
            return sum(1 for event in back.events if event["path"] == "/after/") == 20

        assert wait_until(arrived, timeout=5)
        print(f"{framework}/{fault}: delivery resumed and the backlog was sent {resumed:.2f} s "
              f"after the backend came back")

        # Every request is accounted for, and the server heard about the drops.
        def settled():
            now = app.state()
            received = len(healthy.events) + len(back.events)
            return now if received + now["stats"]["dropped"] == now["made_before"] else None

        final = wait_until(settled, timeout=10)
        assert final, "received + dropped != requests made"
        assert not final["stats"]["backend_failing"]
        told = sum(batch["dropped"] for batch in healthy.batches + back.batches)
        assert told == final["stats"]["dropped"]
        logged = app.logged()  # one line per state change, on logger monitor_request_tracker
        for line in ("backend unreachable or refusing", "queue full (200)", "delivery resumed"):
            assert line in logged, logged
    finally:
        app.stop()
        for backend in backends:
            if backend is not None:
                try:
                    backend.stop()
                except OSError:
                    pass
