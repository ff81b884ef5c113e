"""Included at the site root: pages under /traces/, the trace websocket protocol's REST path
/api/trace/<id>/."""

from django.conf import settings
from django.urls import path, register_converter

import plumbing.converters  # noqa: F401 - registers <id:...>
from traces import api, otlp, views


class TraceRef:
    """A trace's integer id (the trace websocket protocol's) or its 32-hex trace id (OTLP's and
    Zipkin's): an int or a lowercase str."""

    regex = "[0-9]{1,18}|[0-9a-fA-F]{32}"

    def to_python(self, value: str) -> int | str:
        return value.lower() if len(value) == 32 else int(value)

    def to_url(self, value) -> str:
        return str(value)


register_converter(TraceRef, "trace_ref")

app_name = "traces"

urlpatterns = [
    path("traces/", views.index, name="index"),
    path("traces/<trace_ref:trace_id>/", views.detail, name="detail"),
    path("api/trace/<trace_ref:pk>/", api.TraceDetailView.as_view(), name="api-trace"),
    path("api/traces/", api.TraceListView.as_view(), name="api-traces"),
    path("api/traces/services/", api.TraceServicesView.as_view(), name="api-trace-services"),
    # OTLP/HTTP and Zipkin v2 exporters post here; on the lean path (settings.INGEST_PATHS).
    path("v1/traces", otlp.otlp_traces, name="otlp-traces"),
    path("api/v2/spans", otlp.zipkin_spans, name="zipkin-spans"),
]

if settings.TRACE_BENCH_NOOP:  # the OTLP benchmark's decode-only receiver; never in production
    urlpatterns.append(path("v1/bench/decode-only/traces", otlp.otlp_decode_only,
                            name="otlp-decode-only"))
