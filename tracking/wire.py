"""The two wire formats of a tracked request, parsed into one RequestEvent. No Django here.

- The legacy tracker (rigidanalytics-tracker 2.0.5): one JSON object per request, token in the
  body (docs/protocols.md).
- This project's tracker (monitor-request-tracker): batches {"events": [...]} whose events are
  flat objects (see docs/tracking.md).

Both raise EventError naming the offending field, so a batch can keep the good events and
report the bad ones.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tracking.scrub import scrub_headers, scrub_query

MAX_PATH = 2000
MAX_QUERY = 2000
MAX_VIEW_NAME = 200
MAX_USER_AGENT = 512
MAX_SESSION_ID = 64
MAX_METHOD = 16
EARLIEST = 946_684_800.0  # 2000-01-01: older timestamps are clock or unit mistakes
FUTURE_SLACK_SECONDS = 24 * 3600
MAX_DURATION_MS = 24 * 3600 * 1000.0
MAX_RESPONSE_SIZE = 2**63 - 1  # stored in a BIGINT
MAX_NANOSECONDS = 2**63 - 1  # the legacy tracker's time.time_ns(), far beyond any plausible time


class EventError(ValueError):
    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(slots=True)
class RequestEvent:
    timestamp: float  # unix seconds when the tracked app received the request
    duration_ms: float
    path: str
    status_code: int
    method: str = ""
    query: str = ""
    view_name: str = ""
    session_id: str = ""
    user_agent: str = ""
    client_ip: str | None = None
    response_size: int | None = None
    headers: dict = field(default_factory=dict)
    trace_id: str | None = None  # W3C trace context: 32 lowercase hex digits
    span_id: str | None = None  # the server span's id, 16 lowercase hex digits


def _number(value, name, minimum=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EventError(name, "must be a number.")
    if isinstance(value, float) and not math.isfinite(value):
        raise EventError(name, "must be a finite number.")
    if minimum is not None and value < minimum:
        raise EventError(name, f"must be at least {minimum}.")
    if maximum is not None and value > maximum:
        raise EventError(name, f"must be at most {maximum}.")
    return value


def _text(value, name, limit, required=False):
    if value is None:
        if required:
            raise EventError(name, "is required.")
        return ""
    if not isinstance(value, str):
        raise EventError(name, "must be a string.")
    if required and not value:
        raise EventError(name, "may not be empty.")
    if "\x00" in value or not value.isascii():  # two scans in C: the usual text goes no further
        _storable(value, name)
    return value[:limit]


def _storable(text: str, name: str) -> None:
    """No database text column stores a NUL or a lone surrogate (JSON can carry both as
    escapes): the event is refused, naming the field, instead of failing its whole batch."""
    if "\x00" in text:
        raise EventError(name, "contains a NUL character (\\u0000), which cannot be stored.")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise EventError(name, "contains a lone surrogate (\\ud800-\\udfff), which is not "
                                   "text.") from None


def _timestamp(value, name, now):
    _number(value, name)
    if not EARLIEST <= value <= now + FUTURE_SLACK_SECONDS:
        raise EventError(name, "is not a plausible time: expected unix time between 2000-01-01 "
                               "and a day from now (in the expected unit?).")
    return float(value)


def _status(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise EventError(name, "must be an HTTP status code (an integer from 100 to 599).")
    return value


def _ip(value, name):
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise EventError(name, "must be a string.")
    normalised = _normal_ip(value)
    if normalised is None:
        raise EventError(name, "is not an IP address.")
    return normalised


@functools.lru_cache(maxsize=4096)  # the same clients come back: parse each address once
def _normal_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _headers(value, name):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventError(name, "must be an object.")
    return value


def _storable_headers(headers: dict, name: str) -> dict:
    """The scrubbed headers (str names and values), if all can be stored: checked at once, and
    one by one only to name a bad one. Headers scrubbing dropped are not stored, so not checked."""
    text = "".join(headers) + "".join(headers.values())
    if "\x00" in text or not text.isascii():
        for key, value in headers.items():
            _storable(key, name)
            _storable(value, f"{name}.{key[:100]}")
    return headers


_HEX = frozenset("0123456789abcdef")


def _hex_id(value, name, digits):
    """A W3C trace-context id (trace id: 32 hex digits, span id: 16), lowercase, not all zero;
    None when absent."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise EventError(name, "must be a string.")
    value = value.lower()
    if len(value) != digits or not _HEX.issuperset(value) or value == "0" * digits:
        raise EventError(name, f"must be {digits} hex digits, not all zero (W3C trace "
                               "context).")
    return value


def trace_context(trace_id, span_id, prefix="") -> tuple[str | None, str | None]:
    """(trace id, span id) of an event, checked; a span id needs its trace id."""
    trace = _hex_id(trace_id, f"{prefix}trace_id", 32)
    span = _hex_id(span_id, f"{prefix}span_id", 16)
    if span is not None and trace is None:
        raise EventError(f"{prefix}span_id", "needs a trace_id beside it.")
    return trace, span


def _split_path(path, query):
    return path[:MAX_PATH] or "/", scrub_query(query)[:MAX_QUERY]


def parse_seed_event(body, now: float | None = None) -> tuple[str, RequestEvent]:
    """(token, event) from a body of the legacy tracker."""
    now = time.time() if now is None else now
    if not isinstance(body, dict):
        raise EventError("body", "must be a JSON object.")
    token = body.get("project_token")
    if not isinstance(token, str) or not token:
        raise EventError("project_token", "is required.")
    event_type = body.get("event_type")
    if event_type != "page_view":
        raise EventError("event_type", f"must be 'page_view', got {event_type!r}.")
    data = body.get("event_data")
    if not isinstance(data, dict):
        raise EventError("event_data", "must be an object.")
    full_url = _text(data.get("full_url"), "event_data.full_url", 10_000, required=True)
    parts = urlsplit(full_url)
    path, query = _split_path(parts.path, parts.query)
    received_ns = _number(data.get("time_request_received_ns"),
                          "event_data.time_request_received_ns", minimum=0,
                          maximum=MAX_NANOSECONDS)
    processing_ns = _number(data.get("processing_time_ns"), "event_data.processing_time_ns",
                            minimum=0, maximum=MAX_DURATION_MS * 1e6)
    response = data.get("response_data")
    if not isinstance(response, dict):
        raise EventError("event_data.response_data", "must be an object.")
    status = _status(response.get("status_code"), "event_data.response_data.status_code")
    raw_headers = _headers(data.get("header_data"), "event_data.header_data")
    headers = _storable_headers(scrub_headers(raw_headers), "event_data.header_data")
    user_agent = headers.pop("User-Agent", "")
    return token, RequestEvent(
        timestamp=_timestamp(received_ns / 1e9, "event_data.time_request_received_ns", now),
        duration_ms=processing_ns / 1e6,
        path=path,
        query=query,
        status_code=status,
        view_name=_text(data.get("view_name"), "event_data.view_name", MAX_VIEW_NAME),
        session_id=_text(data.get("ra_session_id"), "event_data.ra_session_id", MAX_SESSION_ID),
        user_agent=user_agent[:MAX_USER_AGENT],
        headers=headers,  # the legacy tracker sends no method, client IP or response size
    )


def parse_batch_event(item, now: float | None = None) -> RequestEvent:
    """One event of this project's tracker; field names in errors are the event's own keys."""
    now = time.time() if now is None else now
    if not isinstance(item, dict):
        raise EventError("", "must be an object.")
    path = _text(item.get("path"), "path", 10_000, required=True)
    query = _text(item.get("query"), "query", 10_000)
    if "?" in path and not query:
        path, _, query = path.partition("?")
    path, query = _split_path(path, query)
    size = item.get("response_size")
    if size is not None:
        size = int(_number(size, "response_size", minimum=0, maximum=MAX_RESPONSE_SIZE))
    headers = _storable_headers(scrub_headers(_headers(item.get("headers"), "headers")),
                                "headers")
    user_agent = _text(item.get("user_agent"), "user_agent", MAX_USER_AGENT)
    headers.pop("User-Agent", None)
    trace_id, span_id = trace_context(item.get("trace_id"), item.get("span_id"))
    return RequestEvent(
        timestamp=_timestamp(item.get("time"), "time", now),
        duration_ms=float(_number(item.get("duration_ms"), "duration_ms", minimum=0,
                                  maximum=MAX_DURATION_MS)),
        path=path,
        query=query,
        status_code=_status(item.get("status"), "status"),
        method=_text(item.get("method"), "method", MAX_METHOD).upper(),
        view_name=_text(item.get("view"), "view", MAX_VIEW_NAME),
        session_id=_text(item.get("session_id"), "session_id", MAX_SESSION_ID),
        user_agent=user_agent,
        client_ip=_ip(item.get("client_ip"), "client_ip"),
        response_size=size,
        headers=headers,
        trace_id=trace_id,
        span_id=span_id,
    )
