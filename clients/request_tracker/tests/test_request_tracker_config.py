import pytest

from monitor_request_tracker.config import DEFAULT_ENDPOINT, ingest_url, resolve
from monitor_request_tracker.scrub import scrub_headers, scrub_query

pytestmark = pytest.mark.unit

BASE = {"PROJECT_ID": "p", "PROJECT_TOKEN": "t", "BACKEND_ENDPOINT": "http://m.example/"}


@pytest.mark.parametrize("flag, debug, enabled", [
    (None, True, False), (None, False, True), (True, False, False), (True, True, False),
    (False, True, True), (False, False, True),
])
def test_disabled_follows_debug_when_the_flag_is_missing_or_none(flag, debug, enabled):
    assert resolve({**BASE, "DEBUG_DISABLE_ANALYTICS": flag}, debug).enabled is enabled
    if flag is None:
        assert resolve(BASE, debug).enabled is enabled


def test_environment_fills_what_the_dict_leaves_out(monkeypatch):
    monkeypatch.setenv("RA_PROJECT_ID", "env-id")
    monkeypatch.setenv("RA_PROJECT_TOKEN", "env-token")
    monkeypatch.setenv("RA_BACKEND_ENDPOINT", "https://env.example")
    config = resolve({"DEBUG_DISABLE_ANALYTICS": False}, debug=False)
    assert (config.project_id, config.project_token) == ("env-id", "env-token")
    assert config.ingest_url == "https://env.example/api/tracking/ingest/"
    assert resolve(BASE, False).project_id == "p"


def test_missing_credentials_disable_without_raising(monkeypatch):
    monkeypatch.delenv("RA_PROJECT_ID", raising=False)
    monkeypatch.delenv("RA_PROJECT_TOKEN", raising=False)
    assert resolve({"DEBUG_DISABLE_ANALYTICS": False}, False).enabled is False
    assert resolve(None, False).enabled is False


@pytest.mark.parametrize("endpoint, url", [
    ("", DEFAULT_ENDPOINT + "api/tracking/ingest/"),
    ("   ", DEFAULT_ENDPOINT + "api/tracking/ingest/"),
    ("http://m.example", "http://m.example/api/tracking/ingest/"),
    ("http://m.example/tracking/", "http://m.example/api/tracking/ingest/"),  # the legacy tracker's style
    ("https://m.example/monitor/", "https://m.example/monitor/api/tracking/ingest/"),
    ("m.example:8000", "http://m.example:8000/api/tracking/ingest/"),
])
def test_empty_endpoint_means_the_default_and_seed_style_endpoints_work(endpoint, url, monkeypatch):
    monkeypatch.delenv("RA_BACKEND_ENDPOINT", raising=False)
    assert ingest_url(endpoint) == url
    assert resolve({**BASE, "BACKEND_ENDPOINT": endpoint}, False).ingest_url == url


def test_scrubbing_before_anything_leaves_the_host():
    headers = {"Host": "a", "Authorization": "x", "Cookie": "y", "X-Api-Key": "z",
               "X-Session": "s", "Proxy-Authorization": "p", "Referer": None}
    assert scrub_headers(headers) == {"Host": "a"}
    assert scrub_query("a=1&token=abc") == "a=1&token=%5Bscrubbed%5D"
    assert scrub_query("a=1") == "a=1"


def test_retry_tuning_keys_and_values_that_are_not_numbers(caplog):
    config = resolve({**BASE, "BACKOFF_MAX": "5", "MAX_BATCH_AGE": 30, "MAX_RETRIES": "2"}, False)
    assert (config.backoff_max, config.max_batch_age, config.max_retries) == (5.0, 30.0, 2)
    default = resolve(BASE, False)
    assert (default.backoff_max, default.max_batch_age, default.max_retries) == (30.0, 120.0, 6)
    with caplog.at_level("WARNING", logger="monitor_request_tracker"):
        config = resolve({**BASE, "QUEUE_SIZE": "lots", "BATCH_SIZE": 0}, False)
    assert config.queue_size == 10_000 and config.batch_size == 1  # never raises into the app
    assert "QUEUE_SIZE" in caplog.text
