"""Django middleware: add "monitor_request_tracker.django.RequestTrackerMiddleware" to MIDDLEWARE
after Django's own middleware. Works for sync and async views alike (it adapts to the chain)."""

from time import perf_counter_ns

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed

from monitor_request_tracker.config import resolve
from monitor_request_tracker.sender import get_sender
from monitor_request_tracker.tracecontext import current_span, otel


class RequestTrackerMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        config = resolve(getattr(settings, "RIGID_ANALYTICS", None), settings.DEBUG)
        if not config.enabled:
            raise MiddlewareNotUsed("request tracking is disabled")
        self.get_response = get_response
        self.sender = get_sender(config)
        self._queue_request = self.sender.record
        self._current_span = current_span
        self._otel = otel  # None without opentelemetry-api
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        start = perf_counter_ns()
        response = self.get_response(request)
        self._record(request, response, start)
        return response

    async def __acall__(self, request):
        start = perf_counter_ns()
        response = await self.get_response(request)
        self._record(request, response, start)
        return response

    def _record(self, request, response, start):
        # Runs on the host's request thread: only reads values that are already there and
        # appends them as one tuple (sender.FIELDS). Scrubbing, the visitor id, wall-clock time
        # and JSON are the sender thread's work.
        end = perf_counter_ns()
        try:
            match = request.resolver_match
            meta = request.META
            # The trace context: the app's recording OpenTelemetry span (two ints), else the
            # raw traceparent header (parsed by the sender thread).
            trace = span = None
            if self._otel is not None and self._otel._TRACER_PROVIDER is not None:
                otel_span = self._current_span()
                if otel_span.is_recording():
                    context = otel_span.get_span_context()
                    trace, span = context.trace_id, context.span_id
            if trace is None:
                trace = meta.get("HTTP_TRACEPARENT")
            # One tuple built in one step (explicit gets: no iterator or list to allocate).
            self._queue_request((
                start, end, trace, span, request.method, request.path,
                match.view_name if match is not None else "", response.status_code,
                _streamed_size(response) if response.streaming else len(response.content),
                meta.get("QUERY_STRING"), meta.get("HTTP_COOKIE"), meta.get("HTTP_USER_AGENT"),
                meta.get("REMOTE_ADDR"), meta.get("HTTP_HOST"), meta.get("HTTP_REFERER"),
                meta.get("CONTENT_TYPE"), meta.get("HTTP_ACCEPT_LANGUAGE"),
            ))
        except Exception:  # noqa: BLE001 - metrics must never break the host's response
            pass


def _streamed_size(response):
    size = response.get("Content-Length")
    return int(size) if size and size.isdigit() else None


# The legacy tracker's class name, for settings written for
# rigidanalytics_tracker.middleware.Analytics.
Analytics = RequestTrackerMiddleware
