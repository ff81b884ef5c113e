"""Request metrics from OpenTelemetry: a SERVER span with HTTP attributes is one request served,
whatever language or framework the app is written in. No Django here.

Both generations of OpenTelemetry's HTTP semantic conventions are read (the stable names first):

| metric | attributes |
| --- | --- |
| view | `http.route` |
| path, query | `url.path`, `url.query`; else `http.target`; else `url.full` / `http.url`; else the route |
| method | `http.request.method` (`http.request.method_original` when it says `_OTHER`); `http.method` |
| status | `http.response.status_code`; `http.status_code` |
| duration, time | the span's end minus its start; its start |
| user agent | `user_agent.original`; `http.user_agent` |
| client IP | `client.address`; `http.client_ip`; `net.sock.peer.addr`; `net.peer.ip` |
| response size | `http.response.body.size`; `http.response_content_length` |
| Host header | `http.host`; `server.address` (with `server.port`) |

A SERVER span without a status code, or without a route or path, is no request metric. The
events carry the span's trace and span ids, so a request the tracker reported too (it reads the
app's OpenTelemetry span) is stored once (tracking.services.ingest_events).
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

from tracking.wire import EventError, RequestEvent, parse_batch_event

logger = logging.getLogger(__name__)

SERVER = 2  # OTLP's SpanKind.SPAN_KIND_SERVER
# Fields an event is still worth storing without, when their value cannot be stored.
OPTIONAL = ("client_ip", "user_agent", "response_size", "headers", "query", "method", "view")


def _first(attributes: dict, *keys):
    for key in keys:
        value = attributes.get(key)
        if value not in (None, ""):
            return value
    return None


def _integer(value):
    """Zipkin carries every tag as text: "200" is 200."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _path_and_query(attributes: dict, route) -> tuple[str | None, str]:
    path, query = _first(attributes, "url.path"), _first(attributes, "url.query") or ""
    if path is None:
        target = _first(attributes, "http.target")
        if isinstance(target, str):
            path, _, query = target.partition("?")
    if path is None:
        full = _first(attributes, "url.full", "http.url")
        if isinstance(full, str):
            parts = urlsplit(full)
            path, query = parts.path or "/", parts.query
    if path is None and isinstance(route, str):
        path = route if route.startswith("/") else "/" + route
    return path, query if isinstance(query, str) else ""


def request_item(span) -> dict | None:
    """The span as one event of the tracker's batch format (docs/tracking.md), or None when it
    is not a request served over HTTP."""
    if span.kind != SERVER:
        return None
    attributes = span.attributes or {}
    status = _integer(_first(attributes, "http.response.status_code", "http.status_code"))
    route = _first(attributes, "http.route")
    path, query = _path_and_query(attributes, route)
    if status is None or path is None:
        return None
    method = _first(attributes, "http.request.method", "http.method")
    if method == "_OTHER":
        method = _first(attributes, "http.request.method_original") or method
    host = _first(attributes, "http.host")
    if host is None:
        host = _first(attributes, "server.address")
        port = _first(attributes, "server.port")
        if host is not None and port not in (None, 80, 443, "80", "443"):
            host = f"{host}:{port}"
    item = {
        "time": span.start / 1e9,
        "duration_ms": max(0, span.end - span.start) / 1e6,
        "path": path,
        "query": query,
        "view": route if isinstance(route, str) else None,
        "method": method,
        "status": status,
        "user_agent": _first(attributes, "user_agent.original", "http.user_agent"),
        "client_ip": _first(attributes, "client.address", "http.client_ip",
                            "net.sock.peer.addr", "net.peer.ip"),
        "response_size": _integer(_first(attributes, "http.response.body.size",
                                         "http.response_content_length")),
        "headers": {"Host": str(host)} if host is not None else None,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
    }
    return item


def request_events(spans, now: float | None = None) -> list[RequestEvent]:
    """The request metrics among `spans` (anything with OtelSpan's attributes: trace_id,
    span_id, kind, start, end in ns, attributes). An optional value that cannot be stored (a
    client address that is no IP) is left out; a span whose status, time or path cannot be
    stored is no request metric."""
    now = time.time() if now is None else now
    events = []
    for span in spans:
        item = request_item(span)
        if item is None:
            continue
        for _ in range(len(OPTIONAL) + 1):
            try:
                events.append(parse_batch_event(item, now))
                break
            except EventError as error:
                if error.field.split(".")[0] not in OPTIONAL:
                    logger.debug("span %s of trace %s is no request metric: %s",
                                 span.span_id, span.trace_id, error)
                    break
                item[error.field.split(".")[0]] = None
    return events
