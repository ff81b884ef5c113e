"""A W3C trace context per test, so that what a test causes can be found from it.

While a test runs (setup, call and teardown) the plugin (tm_reporter.pytest_plugin) holds a
trace of its own:

- `TRACEPARENT` and `TM_TRACEPARENT` in os.environ hold its `traceparent`
  (`00-<trace id>-<span id>-01`), for subprocesses the test starts and for code that adds the
  header itself (`headers={"traceparent": os.environ["TM_TRACEPARENT"]}`, or the
  `tm_traceparent` fixture). Their earlier values come back after the test.
- With opentelemetry-api installed, the test runs inside a span of its own (named after the
  test's node id, a root span: each test is a trace of its own): the test's own spans are its
  children, and HTTP clients instrumented by OpenTelemetry send its `traceparent`. With an SDK
  configured that span is recorded and exported like any other; without one, a non-recording
  span carries the plugin's ids, so propagation works all the same.

The trace id goes with the test's report (`trace_id`); Monitor lists, on the test's row, the
trace and the tracked requests carrying it.
"""

from __future__ import annotations

import os
import random
from typing import Any

try:  # optional: without opentelemetry-api only the environment variables are set
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
except ImportError:  # pragma: no cover - depends on the environment
    otel_context = otel_trace = None  # type: ignore[assignment]

ENV_NAMES = ("TRACEPARENT", "TM_TRACEPARENT")
TRACER_NAME = "tm_reporter"


# The plugin's own generator, seeded from the system once: a suite that seeds the global one
# (pytest-randomly does before every test) would otherwise give every test the same ids. Seeded
# again in a forked child, as the global one is.
_random = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_random.seed)


def _new_ids() -> tuple[str, str]:
    """A trace id and a span id, made as the OpenTelemetry SDK's RandomIdGenerator makes them
    (getrandbits, never all zeros): ids must be unique, not secret, and os.urandom was a system
    call per id, two per test."""
    trace_id = span_id = 0
    while not trace_id:
        trace_id = _random.getrandbits(128)
    while not span_id:
        span_id = _random.getrandbits(64)
    return f"{trace_id:032x}", f"{span_id:016x}"


class TestTrace:
    """The trace context of one test: start() on entry, end(failed) on exit."""

    __test__ = False  # not a pytest class

    def __init__(self, name: str):
        self.name = name
        self.trace_id = ""
        self.span_id = ""
        self.traceparent = ""
        self._span: Any = None  # the OpenTelemetry span, when opentelemetry-api is there
        self._token: Any = None
        self._saved: dict[str, str | None] = {}
        self._failed = False

    def start(self) -> TestTrace:
        sampled = True
        if otel_trace is not None:
            # A root span (an empty parent context): each test is a trace of its own, even
            # when the session runs inside one.
            span = otel_trace.get_tracer(TRACER_NAME).start_span(
                self.name, context=otel_context.Context(), kind=otel_trace.SpanKind.INTERNAL,
                attributes={"test.case.name": self.name})
            context = span.get_span_context()
            if context.is_valid:  # an SDK made it (recorded, or sampled out)
                self.trace_id = format(context.trace_id, "032x")
                self.span_id = format(context.span_id, "016x")
                sampled = context.trace_flags.sampled
                self._span = span
        if not self.trace_id:
            self.trace_id, self.span_id = _new_ids()
            if otel_trace is not None:  # the API alone: a span that only carries the ids
                self._span = otel_trace.NonRecordingSpan(otel_trace.SpanContext(
                    int(self.trace_id, 16), int(self.span_id, 16), is_remote=False,
                    trace_flags=otel_trace.TraceFlags(otel_trace.TraceFlags.SAMPLED)))
        self.traceparent = f"00-{self.trace_id}-{self.span_id}-{'01' if sampled else '00'}"
        if self._span is not None:
            self._token = otel_context.attach(otel_trace.set_span_in_context(self._span))
        for name in ENV_NAMES:
            self._saved[name] = os.environ.get(name)
            os.environ[name] = self.traceparent
        return self

    def failed(self, message: str) -> None:
        """The test failed (in any phase): its span's status says so."""
        self._failed = True
        if self._span is not None and self._span.is_recording():
            self._span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, message[:500]))
            self._span.set_attribute("test.case.result.status", "fail")

    def end(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self._token is not None:
            try:
                otel_context.detach(self._token)
            except Exception:  # noqa: BLE001 - a test that left its own context attached
                pass
        if self._span is not None and self._span.is_recording():
            if not self._failed:
                self._span.set_attribute("test.case.result.status", "pass")
            self._span.end()


def suppress_instrumentation() -> None:
    """In this thread, HTTP clients instrumented by OpenTelemetry make no spans (the key
    opentelemetry-instrumentation reads): the reporter's own calls to Monitor would otherwise
    be traces of their own in a suite that instruments `requests`."""
    if otel_context is None:
        return
    context = otel_context.set_value("suppress_instrumentation", True)
    key = getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", None)
    if key is not None:
        context = otel_context.set_value(key, True, context)
    otel_context.attach(context)
