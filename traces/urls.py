"""Included at the site root: pages under /traces/, seed 000's REST path /api/trace/<id>/."""

from django.urls import path

from traces import api, views

app_name = "traces"

urlpatterns = [
    path("traces/", views.index, name="index"),
    path("traces/<int:trace_id>/", views.detail, name="detail"),
    path("api/trace/<int:pk>/", api.TraceDetailView.as_view(), name="api-trace"),
    path("api/traces/", api.TraceListView.as_view(), name="api-traces"),
]
