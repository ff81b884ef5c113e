"""tracking/scrub.py and the request tracker's own scrubber agree on what is secret.

The client scrubs before anything leaves the host and the server scrubs again on arrival; they
are separate packages (the server never imports the client), so the rule is written in both and
checked here."""

import pytest

from monitor_request_tracker import scrub as client
from tracking import scrub as server

pytestmark = pytest.mark.unit


def test_the_sensitive_header_names_and_the_secret_pattern_are_the_same():
    assert client.CREDENTIAL_HEADERS == server.CREDENTIAL_HEADERS
    assert client.SECRET_NAME.pattern == server.SECRET_NAME.pattern
    assert client.SECRET_NAME.flags == server.SECRET_NAME.flags
    assert client.SCRUBBED == server.SCRUBBED


@pytest.mark.parametrize("name", [
    "Cookie", "set-cookie", "Authorization", "Proxy-Authorization", "WWW-Authenticate",
    "X-Api-Key", "X-CSRFToken", "X-Session-Id", "Host", "Referer", "Content-Type",
    "Accept-Language", "X-Request-Id", "User-Agent",
])
def test_both_call_the_same_headers_sensitive(name):
    assert client.is_sensitive(name) == server.is_sensitive(name)


@pytest.mark.parametrize("query", ["", "a=1", "a=1&api_key=k", "token=t&page=2", "q=password"])
def test_both_scrub_a_query_alike(query):
    assert client.scrub_query(query) == server.scrub_query(query)
