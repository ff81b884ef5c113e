"""Django middleware: add "monitor_request_tracker.django.RequestTrackerMiddleware" to MIDDLEWARE
after Django's own middleware. Works for sync and async views alike (it adapts to the chain)."""

import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed

from monitor_request_tracker.config import resolve
from monitor_request_tracker.sender import get_sender

_HEADER_KEYS = ("HTTP_HOST", "HTTP_REFERER", "CONTENT_TYPE", "HTTP_ACCEPT_LANGUAGE")


class RequestTrackerMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        config = resolve(getattr(settings, "RIGID_ANALYTICS", None), settings.DEBUG)
        if not config.enabled:
            raise MiddlewareNotUsed("request tracking is disabled")
        self.get_response = get_response
        self.sender = get_sender(config)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        started = time.time()
        start = time.perf_counter_ns()
        response = self.get_response(request)
        self._record(request, response, started, time.perf_counter_ns() - start)
        return response

    async def __acall__(self, request):
        started = time.time()
        start = time.perf_counter_ns()
        response = await self.get_response(request)
        self._record(request, response, started, time.perf_counter_ns() - start)
        return response

    def _record(self, request, response, started, duration_ns):
        # Only reads what is already there; everything else happens in the sender thread.
        try:
            meta = request.META
            match = request.resolver_match
            if response.streaming:
                size = response.get("Content-Length")
                size = int(size) if size and size.isdigit() else None
            else:
                size = len(response.content)
            self.sender.record((
                started, duration_ns, request.method, request.path, meta.get("QUERY_STRING"),
                match.view_name if match is not None else "", response.status_code,
                meta.get("HTTP_COOKIE"), meta.get("HTTP_USER_AGENT"), meta.get("REMOTE_ADDR"),
                size, tuple(meta.get(key) for key in _HEADER_KEYS),
            ))
        except Exception:  # noqa: BLE001 - metrics must never break the host's response
            pass


# The seed's class name, for settings written for rigidanalytics_tracker.middleware.Analytics.
Analytics = RequestTrackerMiddleware
