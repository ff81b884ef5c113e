from django.conf import settings
from django.urls import path, re_path

from traces import consumers

websocket_urlpatterns = [
    # Seed 000's path has no trailing slash; one is tolerated.
    re_path(r"^ws/trace/(?P<trace_id>[0-9]+)/?$", consumers.TraceIngestConsumer.as_asgi()),
    re_path(r"^ws/trace/", consumers.RefusedTraceId.as_asgi()),
    path("ws/traces/<int:trace_id>/live/", consumers.TraceLiveConsumer.as_asgi()),
]

if settings.TRACE_BENCH_NOOP:
    websocket_urlpatterns.append(
        path("ws/bench/noop/<int:trace_id>", consumers.NoopTraceConsumer.as_asgi())
    )
