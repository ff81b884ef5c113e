"""The lean request path of machine traffic: ingest requests skip the browser's middleware.

Machines (test machines, request trackers, trace and OTLP exporters) authenticate with tokens:
they have no session, no CSRF cookie, no messages, no login to throttle. Django's full stack
(settings.MIDDLEWARE) costs them nine sync middleware, each run on a thread of its own under
ASGI (MiddlewareMixin.__acall__ hops twice per middleware), plus a thread per request made by
ThreadSensitiveContext: about 2.4 ms per request, more than the work itself. So asgi.py sends
requests whose path starts with one of settings.INGEST_PATHS to IngestHandler
(plumbing/library_internals/django_asgi_handler.py), a Django ASGIHandler whose chain is
settings.INGEST_MIDDLEWARE (async-native middleware only), and every other request to Django's
full handler. Pages and the read API keep the full stack.

On the lean path:
- the view is async: what needs no database (the Authorization header's form, a body that is
  not JSON) is answered on the event loop by DRF's own code (`drf_answer`), and the rest runs in
  one hop on a WorkerThreads pool (`on_pool`); a sync view is run in one hop too
  (IngestHandler.make_view_atomic);
- the paths are one list (settings.INGEST_PATHS): a new machine endpoint is added there;
- no session or CSRF cookie is ever set (the middleware that would are not in the chain);
- the headers of SecurityMiddleware and XFrameOptionsMiddleware are still set (SecurityHeaders);
- Django's request signals run on the event loop thread, which never holds a database connection
  here (database work is on the pools' threads, with kept connections).
"""

import asyncio

from asgiref.sync import markcoroutinefunction
from django.conf import settings
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from rest_framework.exceptions import APIException

# Re-exported: the lean views ask it where they run.
from plumbing.library_internals.asgiref_threads import called_from_sync_code  # noqa: F401
from plumbing.workers import kept_connection


class ByPath:
    """ASGI: requests of machine traffic to `ingest`, the others to `full`. HTTP requests whose
    path starts with one of settings.INGEST_PATHS, or, with `websocket_paths`, websockets whose
    path starts with one of those."""

    def __init__(self, ingest, full, websocket_paths=()):
        self.ingest = ingest
        self.full = full
        self.prefixes = {"http": tuple(settings.INGEST_PATHS),
                         "websocket": tuple(websocket_paths)}

    async def __call__(self, scope, receive, send):
        if scope["path"].startswith(self.prefixes.get(scope["type"], ())):
            return await self.ingest(scope, receive, send)
        return await self.full(scope, receive, send)


class SecurityHeaders:
    """SecurityMiddleware (HTTPS redirect, HSTS, nosniff, Referrer-Policy,
    Cross-Origin-Opener-Policy) and XFrameOptionsMiddleware, their hooks called on the event
    loop: they only read settings and set headers."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response):
        self.get_response = get_response
        self.security = SecurityMiddleware(get_response)
        self.frames = XFrameOptionsMiddleware(get_response)
        markcoroutinefunction(self)

    async def __call__(self, request):
        response = self.security.process_request(request)
        if response is None:
            response = await self.get_response(request)
        response = self.security.process_response(request, response)
        return self.frames.process_response(request, response)


# --- views of the lean path ---------------------------------------------------------------------

def drf_answer(view_class, request, check, **kwargs):
    """Runs `check(view, drf_request)` on the event loop inside DRF's own machinery: an
    APIException it raises (or a Response it returns) becomes the rendered answer DRF would
    give, with the same body, status and headers; None (the check passed) lets the request
    go on to the pool. The check must touch neither the database nor the network."""
    view = view_class()
    view.args, view.kwargs = (), kwargs
    view.request = drf_request = view.initialize_request(request, **kwargs)
    view.headers = view.default_response_headers
    try:
        view.format_kwarg = view.get_format_suffix(**kwargs)
        neg = view.perform_content_negotiation(drf_request)
        drf_request.accepted_renderer, drf_request.accepted_media_type = neg
        answer = check(view, drf_request)
        if answer is None:
            return None
    except APIException as exc:
        answer = view.handle_exception(exc)
    return rendered(view.finalize_response(drf_request, answer))


def rendered(response) -> HttpResponse:
    """A DRF Response as a plain HttpResponse, rendered where it is (so that Django does not
    hop to a thread to render it)."""
    if hasattr(response, "render"):
        response.render()
        plain = HttpResponse(response.content, status=response.status_code,
                             headers=dict(response.items()))
        plain.cookies = response.cookies
        return plain
    return response


async def on_pool(pool, view, request, *args, **kwargs):
    """One hop: `view` (a sync view) on a WorkerThreads pool, on the thread's kept database
    connection, its response rendered there."""

    def run():
        with kept_connection():
            return rendered(view(request, *args, **kwargs))

    return await asyncio.get_running_loop().run_in_executor(pool.executor, run)


def body_read(request) -> bytes:
    """The request's body, read now (on the event loop: daphne and uvicorn hand it over whole),
    so that DRF can parse it here and again on the pool's thread."""
    return request.body
