"""Scheduled upkeep. Every job is a function registered here, runs through run_job() (a lease
so two runs never overlap, and its outcome recorded on the Job row shown in the admin), and is a
management command too (`manage.py run_job NAME`, or its own command).

`manage.py run_scheduler` runs them on their schedules (APScheduler cron triggers); cron or
docker-compose's scheduler service can run the commands instead; running one twice at once is
safe: the second finds the lease taken and records `skipped`.
"""

import logging
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import idempotency
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from notifications.models import Delivery, Job, Notification
from plumbing.times import exact

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    function: Callable[[], str]
    cron: str  # minute hour day month day_of_week
    lease: timedelta
    help: str


JOBS: dict[str, ScheduledJob] = {}


def job(name: str, cron: str, help: str, lease: timedelta = timedelta(minutes=30)):
    def register(function):
        JOBS[name] = ScheduledJob(name, function, cron, lease, help)
        return function

    return register


def run_job(name: str) -> Job:
    """Run a registered job unless a run of it holds the lease; record the outcome."""
    scheduled = JOBS[name]
    now = timezone.now()
    Job.objects.get_or_create(name=name)
    taken = Job.objects.filter(name=name).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    ).update(lease_until=now + scheduled.lease, last_started_at=now)
    if not taken:
        Job.objects.filter(name=name).update(
            last_outcome=Job.Outcome.SKIPPED,
            last_detail=f"skipped at {exact(now)}: another run holds the lease",
        )
        return Job.objects.get(name=name)
    try:
        detail, outcome = scheduled.function() or "", Job.Outcome.OK
    except Exception:  # noqa: BLE001 - recorded for the admin, then the next run tries again
        logger.exception("job %s failed", name)
        detail, outcome = traceback.format_exc(limit=5), Job.Outcome.FAILED
    finished = timezone.now()
    record = Job.objects.get(name=name)
    record.lease_until = None
    record.last_finished_at = finished
    record.last_outcome = outcome
    record.last_detail = detail[:5000]
    record.runs += 1
    record.save()
    return record


@job("requeue_deliveries", "* * * * *",
     "Put back deliveries whose worker died mid-send or whose task row was lost.")
def requeue_deliveries() -> str:
    from notifications.delivery import enqueue_delivery

    now = timezone.now()
    stalled = Delivery.objects.filter(state=Delivery.State.SENDING, claimed_until__lt=now)
    revived = stalled.update(state=Delivery.State.PENDING, claimed_until=None, next_attempt_at=now)
    # A pending delivery long past its time has no task waiting for it any more.
    overdue = Delivery.objects.filter(
        state=Delivery.State.PENDING, next_attempt_at__lt=now - timedelta(minutes=5)
    )
    requeued = 0
    for delivery in overdue:
        delivery.next_attempt_at = now
        delivery.save(update_fields=["next_attempt_at"])
        enqueue_delivery(delivery)
        requeued += 1
    return f"{revived} stalled and {requeued} overdue deliveries requeued"


@job("prune_notifications", "30 3 * * *",
     "Delete notifications older than NOTIFY_RETENTION_DAYS and finished task rows.")
def prune_notifications() -> str:
    from django_tasks_db.models import DBTaskResult

    cutoff = timezone.now() - timedelta(days=settings.NOTIFY_RETENTION_DAYS)
    notifications, _ = Notification.objects.filter(created_at__lt=cutoff).delete()
    tasks, _ = DBTaskResult.objects.finished().filter(finished_at__lt=cutoff).delete()
    return f"{notifications} notification rows and {tasks} finished task rows deleted"


@job("detect_silent_machines", "* * * * *",
     "End runs whose machine has been silent for TM_SILENCE_MINUTES (tests become unknown) "
     "and notify machine_silent.")
def detect_silent_machines() -> str:
    from tm_api.services import silence_runs

    silenced = silence_runs(timedelta(minutes=settings.TM_SILENCE_MINUTES))
    names = ", ".join(f"{m.run.machine.machine_name} (run {m.run_id})" for m in silenced)
    return f"{len(silenced)} silent run(s) ended" + (f": {names}" if names else "")


@job("check_projects", "* * * * *",
     "Notify project_degraded when a tracked project's 5xx rate or p95 latency is over its "
     "limit for the last PROJECT_ALERT_WINDOW_MINUTES.")
def check_projects() -> str:
    from notifications.rules import project_degraded
    from tracking.models import Project
    from tracking.services import Window, summarize

    # The last whole minutes and the current one, which is still filling.
    until = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    minutes = settings.PROJECT_ALERT_WINDOW_MINUTES
    window = Window(until - timedelta(minutes=minutes), until)
    report = []
    for project in Project.objects.all():
        crossed = project_degraded(project, summarize(project, window), minutes)
        if crossed:
            report.append(f"{project.name}: {', '.join(crossed)}")
    return "; ".join(report) or "every project within its limits"


@job("prune_old_data", "0 3 * * *",
     "Delete raw request metrics (TRACKING_RAW_RETENTION_DAYS), traces (TRACE_RETENTION_DAYS) "
     "and test runs (TM_RUN_RETENTION_DAYS) older than their retention; rollups stay.",
     lease=timedelta(hours=2))
def prune_old_data() -> str:
    from tm_api.models import Run
    from traces.models import Trace
    from tracking.services import prune_raw_requests

    now = timezone.now()
    requests_deleted = prune_raw_requests()
    traces_deleted = _delete_in_batches(
        Trace.objects.filter(created__lt=now - timedelta(days=settings.TRACE_RETENTION_DAYS)))
    runs_deleted = _delete_in_batches(
        Run.objects.filter(received__lt=now - timedelta(days=settings.TM_RUN_RETENTION_DAYS)))
    keys_deleted = idempotency.prune(now)
    return (f"{requests_deleted} raw requests, {traces_deleted} traces, {runs_deleted} runs and "
            f"{keys_deleted} idempotency keys deleted")


def _delete_in_batches(queryset, batch_size=500) -> int:
    """Delete rows (and what cascades from them) a batch at a time, so that no transaction
    holds locks over a whole table. Counts the top-level rows."""
    deleted = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        queryset.model.objects.filter(pk__in=ids).delete()
        deleted += len(ids)


@job("daily_digest", "0 8 * * *",
     "Notify daily_digest: runs, failures, traces and tracked requests of the last 24 hours.")
def daily_digest() -> str:
    from django.db.models import Count, Sum

    from notifications.rules import daily_digest as notify
    from tm_api.models import MasterScenario
    from traces.models import Trace
    from tracking.models import RequestRollup

    now = timezone.now()
    since = now - timedelta(days=1)
    runs = MasterScenario.objects.filter(run__received__gte=since)
    by_status = dict(runs.values_list("status").annotate(n=Count("pk")))
    failing_runs = runs.filter(status__in=["failed", "error"]).count()
    traces = dict(Trace.objects.filter(created__gte=since).values_list("status")
                  .annotate(n=Count("pk")))
    requests = RequestRollup.objects.filter(period_seconds=60, period_start__gte=since).aggregate(
        count=Sum("count"), server_errors=Sum("server_errors"))
    request_count, server_errors = requests["count"] or 0, requests["server_errors"] or 0
    lines = [
        f"Test runs: {sum(by_status.values())} started, {failing_runs} ending failed or error.",
        f"Traces: {sum(traces.values())} received, {traces.get('inconsistent', 0)} inconsistent.",
        f"Tracked requests: {request_count}, {server_errors} answered 5xx.",
    ]
    facts = [["Runs", sum(by_status.values())], ["Failing runs", failing_runs],
             ["Traces", sum(traces.values())], ["Requests", request_count],
             ["5xx", server_errors]]
    notify(f"{timezone.localdate(now):%Y-%m-%d}", lines, facts)  # the day where people read it
    return " ".join(lines)


@job("compact_rollups", "30 2 * * *",
     "Rollup upkeep: delete per-minute rollup cells older than TRACKING_MINUTE_ROLLUP_DAYS; "
     "hour and day cells keep the history.")
def compact_rollups() -> str:
    from tracking.services import compact_rollups as compact

    return f"{compact()} minute rollup cells deleted"
