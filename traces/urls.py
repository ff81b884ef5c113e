"""Included at the site root: pages under /traces/, the trace websocket protocol's REST path
/api/trace/<id>/."""

from django.urls import path

import plumbing.converters  # noqa: F401 - registers <id:...>
from traces import api, views

app_name = "traces"

urlpatterns = [
    path("traces/", views.index, name="index"),
    path("traces/<id:trace_id>/", views.detail, name="detail"),
    path("api/trace/<id:pk>/", api.TraceDetailView.as_view(), name="api-trace"),
    path("api/traces/", api.TraceListView.as_view(), name="api-traces"),
]
