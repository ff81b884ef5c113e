"""The lean path's Django handler (see plumbing/ingest_path.py for what the lean path is).

IngestHandler is Django's ASGIHandler with another middleware chain and no thread hop of its own.
It builds the chain as BaseHandler.load_middleware does, into the handler's private attributes
(_middleware_chain, _view_middleware, _template_response_middleware, _exception_middleware,
_get_response_async), closes the request as get_response_async does
(HttpResponse._resource_closers) and keeps the matches BaseHandler.resolve_request finds.
plumbing/tests/test_library_internals.py fails, naming Django and its pinned version, when one
of them changes.
"""

import functools

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import ImproperlyConfigured, RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import get_resolver, set_script_prefix, set_urlconf
from django.utils.deprecation import MiddlewareMixin
from django.utils.log import log_response
from django.utils.module_loading import import_string

from plumbing.ingest_path import rendered
from plumbing.workers import kept_connection


class IngestHandler(ASGIHandler):
    """Django's ASGI handler with settings.INGEST_MIDDLEWARE for a chain and no thread hop of
    its own: no ThreadSensitiveContext (a thread per request), the request signals and the
    error log line on the event loop instead of on threads.

    Unlike Django's handler it does not cancel the view when the client disconnects: an ingest
    write that started runs to its end on its pool thread either way."""

    def load_middleware(self, is_async=True):
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response_async)
        for path in reversed(settings.INGEST_MIDDLEWARE):
            middleware = import_string(path)
            if (not getattr(middleware, "async_capable", False)
                    or (issubclass(middleware, MiddlewareMixin)
                        and middleware.__acall__ is MiddlewareMixin.__acall__)):
                raise ImproperlyConfigured(
                    f"INGEST_MIDDLEWARE: {path} is not async-native (a MiddlewareMixin runs "
                    "its hooks on a thread, two hops per request); wrap its hooks as "
                    "plumbing.ingest_path.SecurityHeaders does.")
            instance = middleware(handler)
            for hook in ("process_view", "process_template_response", "process_exception"):
                if hasattr(instance, hook):
                    raise ImproperlyConfigured(f"INGEST_MIDDLEWARE: {path}.{hook} is not "
                                               "supported on the lean path.")
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler

    async def __call__(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        # Django's receivers (reset_queries, close_old_connections) look at this thread's
        # connections: the event loop thread has none on this path.
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        try:
            if request is not None:
                response = await self.run_get_response(request)
            if not response.streaming and not response.has_header("Content-Length"):
                response.headers["Content-Length"] = str(len(response.content))  # as CommonMiddleware
            await self.send_response(response, send)
        finally:
            if response is not None:
                response.close()  # request_finished, on this thread too
            body_file.close()

    def make_view_atomic(self, view):
        """A sync view on this path (one not yet made async for it) runs on a thread of the
        default executor with a kept connection, rendered there: one hop. Django would run it on
        the one thread shared by every sync call outside a ThreadSensitiveContext, where nothing
        hands its connection back or drops it when broken."""
        view = super().make_view_atomic(view)
        if iscoroutinefunction(view):
            return view

        def run(request, *args, **kwargs):
            with kept_connection():
                return rendered(view(request, *args, **kwargs))

        @functools.wraps(view)
        async def on_a_thread(request, *args, **kwargs):
            return await sync_to_async(run, thread_sensitive=False)(request, *args, **kwargs)

        return on_a_thread

    def resolve_request(self, request):
        """Django's, with the match of each path kept: resolving /tm_api/test_start/ tries the
        patterns listed before it, 30-50 µs of every report. Kept per resolver (a resolver made
        anew, as when ROOT_URLCONF changes, starts afresh), at most 256 paths (the lean path's
        are a few); a path that resolves to nothing (404) is never kept."""
        if hasattr(request, "urlconf"):
            return super().resolve_request(request)
        request.resolver_match = match = _resolved(get_resolver(), request.path_info)
        return match

    async def get_response_async(self, request):
        set_urlconf(settings.ROOT_URLCONF)
        response = await self._middleware_chain(request)
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path,
                         response=response, request=request)
        return response


@functools.lru_cache(maxsize=256)
def _resolved(resolver, path_info):
    return resolver.resolve(path_info)
