"""Flask extension: Tracker(app) or Tracker().init_app(app), configured by
app.config["RIGID_ANALYTICS"] (see monitor_request_tracker.config)."""

from time import perf_counter_ns

from flask import g, request

from monitor_request_tracker.config import resolve
from monitor_request_tracker.sender import META_KEYS, get_sender
from monitor_request_tracker.tracecontext import current_span, otel


class Tracker:
    def __init__(self, app=None):
        self.sender = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app):
        config = resolve(app.config.get("RIGID_ANALYTICS"), app.debug)
        app.extensions["monitor_request_tracker"] = self
        if not config.enabled:
            return
        self.sender = sender = get_sender(config)
        queue_request = sender.record

        @app.before_request
        def _start_clock():
            g._monitor_tracker_start = perf_counter_ns()

        @app.after_request
        def _record(response):
            # The host's request thread: raw values only (sender.FIELDS); the sender thread
            # scrubs and encodes them.
            try:
                end = perf_counter_ns()
                environ = request.environ
                # The app's recording OpenTelemetry span (two ints), else the raw traceparent
                # header (parsed by the sender thread).
                trace = span = None
                if otel is not None and otel._TRACER_PROVIDER is not None:
                    otel_span = current_span()
                    if otel_span.is_recording():
                        context = otel_span.get_span_context()
                        trace, span = context.trace_id, context.span_id
                if trace is None:
                    trace = environ.get("HTTP_TRACEPARENT")
                queue_request((
                    g.pop("_monitor_tracker_start"), end, trace, span, request.method,
                    request.path,
                    request.endpoint or "", response.status_code,
                    None if response.is_streamed else response.calculate_content_length(),
                    *map(environ.get, META_KEYS),
                ))
            except Exception:  # noqa: BLE001 - metrics must never break the host's response
                pass
            return response
