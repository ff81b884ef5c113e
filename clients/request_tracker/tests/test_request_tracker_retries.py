"""The sender's retry policy against a local stub backend: idempotency keys, backoff with jitter
shared across batches and capped, Retry-After, giving up by attempts or age, counters."""

import re
import time

import pytest
from request_tracker_stub import StubBackend, wait_until

import monitor_request_tracker
from monitor_request_tracker.config import TrackerConfig, ingest_url
from monitor_request_tracker.sender import Sender, request_item

pytestmark = pytest.mark.integration


def config(url, **overrides):
    values = dict(project_id="p1", project_token="tok", ingest_url=ingest_url(url), enabled=True,
                  queue_size=1000, batch_size=100, flush_interval=0.05, timeout=0.5,
                  max_retries=20, backoff_max=0.2, max_batch_age=60, shutdown_timeout=0.5)
    values.update(overrides)
    return TrackerConfig(**values)


def item(n):
    return request_item(f"/r/{n}", view="v", response_size=1, duration_ns=1_000_000,
                        meta={"HTTP_USER_AGENT": "agent", "REMOTE_ADDR": "10.0.0.1"})


@pytest.fixture
def stub():
    with StubBackend() as backend:
        yield backend


@pytest.fixture
def senders():
    made = []

    def make(cfg):
        sender = Sender(cfg)
        made.append(sender)
        return sender

    yield make
    for sender in made:
        sender.close()


def test_each_batch_has_its_own_idempotency_key_and_every_retry_reuses_it(stub, senders):
    stub.statuses = [503, 429]
    stub.retry_after = "0.05"
    sender = senders(config(stub.url))
    sender.record(item(1))
    assert stub.wait_for(1, timeout=5)
    sender.record(item(2))
    assert stub.wait_for(2, timeout=5)
    keys = [key for _, key, _ in stub.attempts]
    assert [status for *_, status in stub.attempts] == [503, 429, 200, 200]
    assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)  # uuid4 hex: ≤ 64 printable
    assert keys[0] == keys[1] == keys[2] != keys[3]
    # The stub has the batch before the sender has read its answer.
    assert wait_until(lambda: sender.sent == 2, timeout=5)
    assert sender.stats()["retries"] == 2 and sender.dropped == 0


def test_a_batch_stored_whose_answer_was_lost_is_not_stored_twice(stub, senders):
    stub.delays = [2.0]  # stored at once, answered after the client's 0.7 s timeout
    sender = senders(config(stub.url, timeout=0.7))
    for n in range(5):
        sender.record(item(n))
    assert wait_until(lambda: sender.sent == 5, timeout=10)
    assert len(stub.attempts) >= 2 and len({key for _, key, _ in stub.attempts}) == 1
    assert len(stub.events) == 5  # the retry was answered from the first answer, not stored
    assert "TimeoutError" in sender.last_error or "timed out" in sender.last_error


def test_gives_up_after_max_retries_counts_the_drop_and_tells_the_server_later(stub, senders):
    stub.status = 503
    stub.retry_after = None
    sender = senders(config(stub.url, max_retries=2, backoff_max=0.05, timeout=5))
    for n in range(10):
        sender.record(item(n))
    assert wait_until(lambda: sender.batches_failed == 1, timeout=5)
    stats = sender.stats()
    assert len(stub.attempts) == 3 and len({key for _, key, _ in stub.attempts}) == 1
    assert (stats["dropped"], stats["dropped_given_up"], stats["dropped_queue_full"]) == (10, 10, 0)
    assert stats["retries"] == 2 and stats["backend_failing"] and stats["last_error"] == "HTTP 503"
    process = monitor_request_tracker.stats()  # every sender of the process, summed
    assert process["senders"] >= 1 and process["dropped_given_up"] >= 10
    stub.status = 200
    sender.record(item(99))
    assert stub.wait_for(1, timeout=5)
    assert stub.batches[0]["dropped"] == 10  # the count travels with the next batch
    assert wait_until(lambda: not sender.stats()["backend_failing"])


def test_a_batch_older_than_max_batch_age_is_given_up(stub, senders):
    stub.status = 503
    stub.retry_after = None
    sender = senders(config(stub.url, max_retries=1000, backoff_max=0.1, max_batch_age=0.6))
    started = time.monotonic()
    sender.record(item(1))
    assert wait_until(lambda: sender.batches_failed == 1, timeout=5)
    assert time.monotonic() - started < 3
    assert 3 <= len(stub.attempts) <= 20 and sender.dropped_given_up == 1


def test_retry_after_on_503_is_honoured_and_capped_by_backoff_max(stub, senders):
    stub.statuses = [503, 503]
    stub.retry_after = "0.4"
    sender = senders(config(stub.url, backoff_max=5))
    sender.record(item(1))
    assert stub.wait_for(1, timeout=5)
    times = [at for at, _, _ in stub.attempts]
    assert all(0.4 <= b - a <= 0.9 for a, b in zip(times, times[1:]))

    stub.attempts.clear()
    stub.statuses = [503]
    stub.retry_after = "3600"  # a misconfigured proxy must not stop delivery for an hour
    sender = senders(config(stub.url, backoff_max=0.3))
    sender.record(item(2))
    assert stub.wait_for(2, timeout=5)
    (first, *_), (second, *_) = stub.attempts
    assert 0.25 <= second - first <= 1.0


def test_backoff_grows_with_jitter_up_to_the_cap_across_batches(stub, senders):
    """Without Retry-After: 0.5 s doubling, times 0.5-1.0 (jitter), capped at BACKOFF_MAX; the
    backoff is kept when a batch is given up, so an outage is not hammered batch after batch."""
    stub.status = 503
    stub.retry_after = None
    sender = senders(config(stub.url, batch_size=10, max_retries=1, backoff_max=0.6,
                            timeout=5))
    for n in range(60):
        sender.record(item(n))
    assert wait_until(lambda: len(stub.attempts) >= 6, timeout=10)
    times = [at for at, _, _ in stub.attempts[:6]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # 0.5 × U(0.5, 1), then min(0.6, 1, 2, 4, ...) × U(0.5, 1); uncapped the 4th and 5th gaps
    # would be 2-4 s and 4-8 s. Upper bounds leave room for a loaded machine's scheduling.
    assert 0.25 <= gaps[0] <= 0.8, gaps
    assert all(0.3 <= gap <= 1.0 for gap in gaps[1:]), gaps
    assert len({round(gap, 3) for gap in gaps}) > 1  # jitter
    assert sender.batches_failed >= 2  # several batches went by, none of them retried at once
    assert len({key for _, key, _ in stub.attempts[:6]}) >= 3
