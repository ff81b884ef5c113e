"""The sender against a local stub backend: down, slow, 429; the host never waits."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from request_tracker_stub import StubBackend, wait_until

from monitor_request_tracker.config import TrackerConfig, ingest_url
from monitor_request_tracker.sender import Sender

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parent.parent / "src"


def config(url, **overrides):
    values = dict(project_id="p1", project_token="tok", ingest_url=ingest_url(url), enabled=True,
                  queue_size=1000, batch_size=100, flush_interval=0.05, timeout=0.5,
                  max_retries=20, shutdown_timeout=2.0)
    values.update(overrides)
    return TrackerConfig(**values)


def item(n, cookie=None, headers=(None, None, None, None)):
    return (time.time(), 1_500_000, "GET", f"/item/{n}", "a=1&api_key=k", "items", 200, cookie,
            "agent", "10.0.0.1", 10, headers)


@pytest.fixture
def stub():
    backend = StubBackend()
    yield backend
    backend.stop()


def record_many(sender, count, start=0):
    """Record `count` requests; returns the slowest single record() call in seconds."""
    slowest = 0.0
    for n in range(start, start + count):
        t0 = time.perf_counter()
        sender.record(item(n))
        slowest = max(slowest, time.perf_counter() - t0)
    return slowest


def test_batches_arrive_gzipped_scrubbed_and_authenticated(stub):
    sender = Sender(config(stub.url))
    sender.record(item(0, cookie="sessionid=abc; ra_session_id=visitor42",
                       headers=("shop.example", None, "text/html", None)))
    record_many(sender, 249, start=1)
    assert stub.wait_for(250)
    sender.close()
    first = stub.events[0]
    assert first["session_id"] == "visitor42" and first["headers"] == {
        "Host": "shop.example", "Content-Type": "text/html"}
    assert first["query"] == "a=1&api_key=%5Bscrubbed%5D" and first["duration_ms"] == 1.5
    assert "sessionid" not in str(stub.batches)
    assert stub.batches[0]["_authorization"] == "Bearer tok"
    assert stub.batches[0]["project_id"] == "p1"
    assert max(len(b["events"]) for b in stub.batches) <= 100  # batched by size


def test_backend_down_then_back_host_stays_fast_memory_bounded_drops_counted(stub):
    port = stub.port
    stub.stop()  # nothing listens: connection refused
    sender = Sender(config(f"http://127.0.0.1:{port}/", queue_size=200, max_retries=50))
    slowest = record_many(sender, 1000)
    assert slowest < 0.01  # never waits for the network
    assert len(sender._queue) <= 200
    time.sleep(0.3)
    assert sender.dropped >= 700  # counted, not silently lost
    back = StubBackend(port=port)
    try:
        assert back.wait_for(150, timeout=15), "did not recover after the backend returned"
        record_many(sender, 10, start=5000)
        assert back.wait_for(160, timeout=10)
        assert sum(b["dropped"] for b in back.batches) >= 700  # the server hears about drops
    finally:
        sender.close()
        back.stop()


def test_slow_backend_times_out_and_the_host_never_waits(stub):
    stub.delay = 1.5  # longer than the 0.5 s timeout
    sender = Sender(config(stub.url, max_retries=0))
    started = time.perf_counter()
    slowest = record_many(sender, 50)
    assert time.perf_counter() - started < 0.1 and slowest < 0.01
    deadline = time.monotonic() + 5
    while sender.batches_failed == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sender.batches_failed >= 1 and sender.dropped >= 50
    stub.delay = 0
    record_many(sender, 5, start=100)
    sender.flush(timeout=5)
    assert any(e["path"] == "/item/100" for e in stub.events)
    sender.close()


def test_429_retry_after_is_honoured(stub):
    stub.statuses = [429, 429]
    stub.retry_after = "0.3"
    sender = Sender(config(stub.url))
    started = time.monotonic()
    sender.record(item(1))
    assert stub.wait_for(1, timeout=5)
    assert time.monotonic() - started >= 0.6  # waited Retry-After twice
    assert wait_until(lambda: sender.sent == 1, timeout=5)  # it reads the answer after
    assert sender.dropped == 0
    sender.close()


def run_script(code, stub):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, timeout=30,
                          capture_output=True, text=True)


def test_queued_requests_are_flushed_at_exit_within_the_deadline(stub):
    result = run_script(f"""
        import time
        from monitor_request_tracker.config import TrackerConfig
        from monitor_request_tracker.sender import Sender
        sender = Sender(TrackerConfig("p", "t", "{stub.url}api/tracking/ingest/", True,
                                      flush_interval=60, shutdown_timeout=3))
        for n in range(30):
            sender.record((time.time(), 1000, "GET", f"/exit/{{n}}", "", "v", 200, None,
                           None, None, None, (None,) * 4))
    """, stub)
    assert result.returncode == 0, result.stderr
    assert len(stub.events) == 30


def test_exit_is_not_held_up_by_a_dead_backend(stub):
    port = stub.port
    stub.stop()
    started = time.monotonic()
    result = run_script(f"""
        import time
        from monitor_request_tracker.config import TrackerConfig
        from monitor_request_tracker.sender import Sender
        sender = Sender(TrackerConfig("p", "t", "http://127.0.0.1:{port}/api/tracking/ingest/",
                                      True, flush_interval=60, shutdown_timeout=1))
        sender.record((time.time(), 1000, "GET", "/", "", "v", 200, None, None, None, None,
                       (None,) * 4))
    """, stub)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 6


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_sender_thread(stub):
    result = run_script(f"""
        import os, time
        from monitor_request_tracker.config import TrackerConfig
        from monitor_request_tracker.sender import Sender
        sender = Sender(TrackerConfig("p", "t", "{stub.url}api/tracking/ingest/", True,
                                      flush_interval=0.05))
        def rec(path):
            sender.record((time.time(), 1000, "GET", path, "", "v", 200, None, None, None,
                           None, (None,) * 4))
        rec("/parent")
        sender.flush(5)
        pid = os.fork()
        if pid == 0:
            rec("/child")
            sender.flush(5)
            os._exit(0 if sender.sent == 1 else 3)
        _, status = os.waitpid(pid, 0)
        raise SystemExit(os.waitstatus_to_exitcode(status))
    """, stub)
    assert result.returncode == 0, result.stderr
    assert sorted(e["path"] for e in stub.events) == ["/child", "/parent"]
