from django.conf import settings
from django.urls import path, re_path

import plumbing.converters  # noqa: F401 - registers <id:...>
from traces import consumers

websocket_urlpatterns = [
    # The trace websocket protocol's path has no trailing slash; one is tolerated. Any other
    # ws/trace/ path (not a number, or longer than a BIGINT) is refused by trace_project.routing's
    # catch-all.
    re_path(r"^ws/trace/(?P<trace_id>[0-9]{1,19})/?$", consumers.TraceIngestConsumer.as_asgi()),
    path("ws/traces/<id:trace_id>/live/", consumers.TraceLiveConsumer.as_asgi()),
    # An OTLP or Zipkin trace's page, by its trace id.
    re_path(r"^ws/traces/(?P<trace_id>[0-9a-fA-F]{32})/live/$",
            consumers.TraceLiveConsumer.as_asgi()),
]

if settings.TRACE_BENCH_NOOP:
    websocket_urlpatterns.append(
        path("ws/bench/noop/<id:trace_id>", consumers.NoopTraceConsumer.as_asgi())
    )
