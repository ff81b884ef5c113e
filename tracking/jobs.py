"""The request-metrics app's scheduled jobs and its parts of the shared ones
(notifications.jobs)."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from notifications.jobs import digest_section, job, prunes
from notifications.rules import project_degraded
from tracking import services
from tracking.models import Project, RequestRollup


@job("check_projects", "* * * * *",
     "Notify project_degraded when a tracked project's 5xx rate or p95 latency is over its "
     "limit for the last PROJECT_ALERT_WINDOW_MINUTES.")
def check_projects() -> str:
    # The last whole minutes and the current one, which is still filling.
    until = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    minutes = settings.PROJECT_ALERT_WINDOW_MINUTES
    window = services.Window(until - timedelta(minutes=minutes), until)
    report = []
    for project in Project.objects.all():
        crossed = project_degraded(project, services.summarize(project, window), minutes)
        if crossed:
            report.append(f"{project.name}: {', '.join(crossed)}")
    return "; ".join(report) or "every project within its limits"


@job("compact_rollups", "30 2 * * *",
     "Rollup upkeep: delete per-minute rollup cells older than TRACKING_MINUTE_ROLLUP_DAYS; "
     "hour and day cells keep the history.")
def compact_rollups() -> str:
    return f"{services.compact_rollups()} minute rollup cells deleted"


@prunes("raw requests", order=10)
def prune_raw_requests() -> int:
    return services.prune_raw_requests()


@digest_section("tracked requests", order=30)
def digest_requests(since):
    requests = RequestRollup.objects.filter(period_seconds=60, period_start__gte=since).aggregate(
        count=Sum("count"), server_errors=Sum("server_errors"))
    request_count, server_errors = requests["count"] or 0, requests["server_errors"] or 0
    line = f"Tracked requests: {request_count}, {server_errors} answered 5xx."
    return line, [["Requests", request_count], ["5xx", server_errors]]
