"""The W3C trace context a request was served in: the app's OpenTelemetry span when one is
recording (its span id is the SERVER span's own, which lets the server count a request once when
OpenTelemetry reports it too), else the incoming `traceparent` header.

The request thread only takes what is there: current_span() once the app has set a tracer
provider (`otel`, below; None without opentelemetry-api), and the raw header. The sender
thread parses and formats (trace_fields).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # opentelemetry-api is optional: without it, only the traceparent header is read
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - depends on the environment
    _otel_trace = None  # type: ignore[assignment]


def _no_span() -> None:  # never called: `otel` is None without opentelemetry-api
    return None


current_span: Callable[[], Any] = (
    _otel_trace.get_current_span if _otel_trace is not None else _no_span)


class _AlwaysLookUp:
    _TRACER_PROVIDER = True


# What the request thread reads before looking a span up: `otel._TRACER_PROVIDER is not None`,
# whether the app has set an OpenTelemetry tracer provider (opentelemetry-api keeps it in that
# global, set once by set_tracer_provider()). Without one no span records, so the look-up is
# skipped: it was most of the trace context's cost per request (bench/tracking_overhead.py).
# Where an API version has no such global, the span is always looked up.
otel: Any = (None if _otel_trace is None else
             _otel_trace if hasattr(_otel_trace, "_TRACER_PROVIDER") else _AlwaysLookUp)

_HEX = frozenset("0123456789abcdef")
ZERO_TRACE, ZERO_SPAN = "0" * 32, "0" * 16


def parse_traceparent(value) -> tuple[str, str] | None:
    """(trace id, parent id) of a `traceparent` header as W3C Trace Context level 1 reads it,
    or None when it is malformed: version 00 is exactly 55 characters; a later version (not
    ff) is read for its first four fields; ids are lowercase hex, not all zero."""
    if not isinstance(value, str):
        return None
    value = value.strip(" \t")
    if len(value) < 55 or value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    version = value[:2]
    if version == "00":
        if len(value) != 55:
            return None
    elif version == "ff" or (len(value) > 55 and value[55] != "-"):
        return None
    trace_id, parent_id, flags = value[3:35], value[36:52], value[53:55]
    if not _HEX.issuperset(version + trace_id + parent_id + flags):
        return None
    if trace_id == ZERO_TRACE or parent_id == ZERO_SPAN:
        return None
    return trace_id, parent_id


def trace_fields(trace, span) -> str:
    """The event's JSON members for a queued (trace, span) pair, with a trailing comma, or ""
    when the request had no (valid) trace context. From an OpenTelemetry span: both ids (ints);
    from a header (a str): its trace id only, since the caller's span is not this request's."""
    if trace is None:
        return ""
    if isinstance(trace, int):
        if not trace or not span:
            return ""
        return f'"trace_id":"{trace:032x}","span_id":"{span:016x}",'
    parsed = parse_traceparent(trace)
    return f'"trace_id":"{parsed[0]}",' if parsed is not None else ""
