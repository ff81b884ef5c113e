import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications import messages
from notifications.messages import Message

pytestmark = pytest.mark.unit

MESSAGE = Message(
    id=7, rule="run_failed", title="Run on machine #1 finished: 2 failed",
    text="scenario_master.py", link="http://monitor.example/machine/run_data/3",
    facts=[["Failed", 2], ["Passed", 10]], created_at="2026-11-21T10:00:00+00:00",
)


def test_discord_body_has_seed_002_shape():
    body = messages.discord_body(MESSAGE)
    assert set(body) == {"username", "content", "embeds"}
    assert body["username"] == "Monitor"
    assert 1 <= len(body["embeds"]) <= messages.DISCORD_MAX_EMBEDS
    embed = body["embeds"][0]
    assert embed["url"] == MESSAGE.link
    assert {"name": "Failed", "value": "2", "inline": True} in embed["fields"]


def test_discord_limits_are_respected():
    long = Message(id=1, rule="test", title="t" * 5000, text="x" * 10000,
                   facts=[[f"f{i}", "v"] for i in range(40)])
    body = messages.discord_body(long)
    assert len(body["content"]) <= 2000
    assert len(body["embeds"][0]["title"]) <= 256
    assert len(body["embeds"][0]["description"]) <= 4096
    assert len(body["embeds"][0]["fields"]) == 25


def test_slack_and_webhook_bodies():
    assert "*Run on machine #1 finished: 2 failed*" in messages.slack_body(MESSAGE)["text"]
    body = messages.webhook_body(MESSAGE)
    assert body["facts"] == {"Failed": 2, "Passed": 10} and body["id"] == 7


def test_signature_verifies_and_rejects_tampering():
    raw = messages.encode(messages.webhook_body(MESSAGE))
    header = messages.signature("k3y", "1700000000", raw)
    assert header.startswith("sha256=")
    assert messages.verify_signature("k3y", "1700000000", raw, header)
    assert not messages.verify_signature("k3y", "1700000001", raw, header)
    assert not messages.verify_signature("other", "1700000000", raw, header)
    assert not messages.verify_signature("k3y", "1700000000", raw + b" ", header)


@pytest.mark.parametrize("status, retry", [
    (None, True), (500, True), (502, True), (429, True), (408, True),
    (400, False), (401, False), (404, False), (410, False),
])
def test_retryable(status, retry):
    assert messages.is_retryable(status) is retry


@given(attempt=st.integers(1, 40), base=st.floats(0.01, 60), cap=st.floats(1, 7200),
       jitter=st.floats(0, 1), retry_after=st.none() | st.floats(0, 100000))
def test_retry_delay_grows_but_stays_capped(attempt, base, cap, jitter, retry_after):
    delay = messages.retry_delay(attempt, base, cap, retry_after, rng=lambda: jitter)
    ceiling = min(cap, base * 2 ** (attempt - 1))
    assert 0 <= delay <= max(ceiling, min(retry_after or 0, cap)) + 1e-9
    assert delay >= ceiling / 2 - 1e-9
    if retry_after is not None:
        assert delay >= min(retry_after, cap) - 1e-9
