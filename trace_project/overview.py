"""The home page's overview: "is anything wrong right now", across the three areas.

Each area answers its own question (tm_api.overview, tracking.overview, traces.overview); this
module, above them all, puts the answers together for the page, its live refresh and
GET /api/overview/.
"""

from datetime import timedelta

from django.conf import settings
from django.shortcuts import render
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from plumbing.access import may_view_dashboards
from tm_api import overview as tests_overview
from traces import overview as traces_overview
from tracking import overview as metrics_overview


def overview(now=None) -> dict:
    now = now or timezone.now()
    sections = {
        "failing_tests": tests_overview.failing_tests(),
        "silent_machines": tests_overview.silent_machines(
            now, timedelta(seconds=settings.OVERVIEW_SILENT_SECONDS)),
        "projects_over_limits": metrics_overview.projects_over_limits(now),
        "error_traces": traces_overview.recent_error_traces(),
    }
    return {"at": now,
            "all_clear": not any(section["count"] for section in sections.values()),
            **sections}


def home(request):
    """The home page: the overview for those who may see dashboards, the introduction for all."""
    context = {"overview": overview() if may_view_dashboards(request.user) else None}
    return render(request, "home.html", context)


def overview_panel(request):
    """The overview alone, for the home page's live refresh (it swaps this HTML in)."""
    if not may_view_dashboards(request.user):
        return render(request, "overview_panel.html", {"overview": None}, status=403)
    return render(request, "overview_panel.html", {"overview": overview()})


def _section(name: str, item: dict):
    return inline_serializer(name, {
        "count": serializers.IntegerField(help_text="how many in all (items stop at a limit)"),
        "items": serializers.ListField(child=serializers.DictField(), help_text=item["help"]),
    })


class OverviewView(APIView):
    @extend_schema(
        operation_id="overview", tags=["overview"],
        summary="What is wrong right now, across tests, request metrics and traces",
        description="The home page's figures: failed and errored tests of every machine's latest "
                    "run; runs whose machine has reported nothing for OVERVIEW_SILENT_SECONDS; "
                    "tracked projects over their error-rate or p95 limit in the alert window; "
                    "the latest traces with a span in error. Each section has `count` (all) "
                    "and `items` (the first ones, each with the `url` of its page).",
        responses={200: inline_serializer("Overview", {
            "at": serializers.DateTimeField(),
            "all_clear": serializers.BooleanField(help_text="no section has anything"),
            "failing_tests": _section("OverviewFailingTests", {
                "help": "test, path, status, outcome, message, machine, run, stopped, url"}),
            "silent_machines": _section("OverviewSilentMachines", {
                "help": "machine, run, last_report, silent_seconds, url"}),
            "projects_over_limits": _section("OverviewProjectsOverLimits", {
                "help": "project, project_id, limits, requests, error_rate, p95_ms, url"}),
            "error_traces": _section("OverviewErrorTraces", {
                "help": "trace, name, service, errors, spans, updated, url"}),
        })},
    )
    def get(self, request):
        return Response(overview())
