"""ASGI entry point: HTTP to Django, websockets through origin and auth checks to the apps; both
through the limits of trace_project/limits.py first."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trace_project.settings")
# Django must be set up before anything imports models (consumers, routing).
django_asgi_app = get_asgi_application()

import sys

from django.conf import settings

if "twisted.internet.reactor" in sys.modules:  # daphne installs its reactor before loading us
    from plumbing.library_internals.daphne_requests import (
        leave_request_bodies_to_django,
        time_out_slow_headers,
    )

    # Under daphne: bodies reach Django unparsed by Twisted (a bad multipart body is ours to
    # answer), and a request whose headers trickle in is closed with 408 (docs/limits.md).
    # Under uvicorn, plumbing/library_internals/uvicorn_protocol.py does the same for headers.
    leave_request_bodies_to_django()
    time_out_slow_headers(settings.HTTP_HEADER_TIMEOUT_SECONDS)

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import get_resolver

from accounts.websocket import PersonalTokenWebsocket
from plumbing.body_limit import BodySizeLimit
from plumbing.ingest_path import ByPath
from plumbing.library_internals.django_asgi_handler import IngestHandler
from plumbing.security import allowed_hosts_origin_validator
from plumbing.websocket_limits import WebsocketLimits
from trace_project.routing import websocket_urlpatterns
from tracking.ingest_queue import IngestQueue

application = ProtocolTypeRouter(
    {
        # Limits first (docs/limits.md): a client over one costs no more than the check. A burst
        # of tracking ingest requests then waits its turn in the event loop, not in a thread.
        # Machine traffic (settings.INGEST_PATHS) then takes the lean path, without the
        # browser's middleware (plumbing/ingest_path.py).
        "http": BodySizeLimit(IngestQueue(ByPath(IngestHandler(), django_asgi_app))),
        # Trace programs' sockets (settings.INGEST_WEBSOCKET_PATHS) have no login: they skip
        # the cookie, session and user lookup the pages' sockets need. The pages' sockets take
        # a personal API token too (accounts/websocket.py), for programs without a cookie.
        "websocket": WebsocketLimits(allowed_hosts_origin_validator(ByPath(
            URLRouter(websocket_urlpatterns),
            AuthMiddlewareStack(PersonalTokenWebsocket(URLRouter(websocket_urlpatterns))),
            websocket_paths=settings.INGEST_WEBSOCKET_PATHS,
        ))),
    }
)

# The objects of start-up (modules, classes, URL patterns: about 140,000) live as long as the
# process. Left to the garbage collector, each full collection walks them all again (50-100 ms
# with the GIL held, every 10 s or so under load: the p99 of every request in flight then);
# frozen, they are skipped. Views are imported first, so that their modules are frozen too.
get_resolver().url_patterns  # noqa: B018 (imports every view's module)
gc.collect()
gc.freeze()
