"""Scheduled upkeep: the registry of jobs, and the runner. Every job is a function registered
with @job, runs through run_job() (a lease so two runs never overlap, and its outcome recorded
on the Job row shown in the admin), and is a management command too (`manage.py run_job NAME`).

Each app owns its jobs, in its own `jobs` module, found when the apps are ready
(NotificationsConfig.ready: autodiscover_modules("jobs")). Two jobs gather the parts of every
app: prune_old_data runs each app's @prunes step (rows past their retention), and daily_digest
puts each app's @digest_section in one notification. So this module imports no domain app: the
apps import it.

`manage.py run_scheduler` runs them on their schedules (APScheduler cron triggers); cron or
docker-compose's scheduler service can run the commands instead; running one twice at once is
safe: the second finds the lease taken and records `skipped`.
"""

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from notifications.models import Delivery, Job, Notification
from plumbing import partitions
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


@dataclass(frozen=True)
class Part:
    order: int  # where it comes in the job's detail (or the digest)
    what: str
    function: Callable


# Steps of prune_old_data: function() -> rows deleted, named `what` in the detail.
PRUNE_STEPS: list[Part] = []
# Sections of daily_digest: function(since) -> (a line of the digest, [[fact, value], ...]).
DIGEST_SECTIONS: list[Part] = []


def _registrar(parts: list[Part]):
    def register_as(what: str, order: int):
        def register(function):
            parts.append(Part(order, what, function))
            parts.sort(key=lambda part: part.order)
            return function

        return register

    return register_as


# @prunes("traces", order=20): a step of the prune_old_data job, `what` it deletes.
prunes = _registrar(PRUNE_STEPS)


def prunes_older_than(what: str, order: int, model, field: str, days_setting: str) -> Callable:
    """A step of prune_old_data deleting the rows of `model` whose `field` is older than the
    number of days in settings.<days_setting>."""

    def prune() -> int:
        cutoff = timezone.now() - timedelta(days=getattr(settings, days_setting))
        return delete_in_batches(model.objects.filter(**{f"{field}__lt": cutoff}))

    prune.__name__ = prune.__qualname__ = "prune_" + what.replace(" ", "_")
    return prunes(what, order)(prune)
# @digest_section("traces", order=20): a section of the daily_digest notification.
digest_section = _registrar(DIGEST_SECTIONS)


def delete_in_batches(queryset, batch_size=500) -> int:
    """Delete rows (and what cascades from them) a batch at a time, so that no transaction
    holds locks over a whole table. Counts the top-level rows."""
    deleted = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        queryset.model.objects.filter(pk__in=ids).delete()
        deleted += len(ids)


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
    except Exception:  # recorded for the admin, then the next run tries again
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


@job("create_partitions", "15 * * * *",
     "Make the partitions of the next PARTITION_AHEAD_DAYS days of every table partitioned by "
     "time (PostgreSQL: spans, raw request metrics); nothing on SQLite.")
def create_partitions() -> str:
    made = partitions.create_ahead()
    return f"{len(made)} partition(s) made" + (f": {', '.join(made)}" if made else "")


@job("prune_old_data", "0 3 * * *",
     "Delete raw request metrics (TRACKING_RAW_RETENTION_DAYS), traces (TRACE_RETENTION_DAYS) "
     "and test runs (TM_RUN_RETENTION_DAYS) older than their retention; rollups stay.",
     lease=timedelta(hours=2))
def prune_old_data() -> str:
    counts = [f"{step.function()} {step.what}" for step in PRUNE_STEPS]
    if not counts:
        return "nothing to prune"
    listed = ", ".join(counts[:-1]) + " and " + counts[-1] if len(counts) > 1 else counts[0]
    return f"{listed} deleted"


@job("daily_digest", "0 8 * * *",
     "Notify daily_digest: runs, failures, traces and tracked requests of the last 24 hours.")
def daily_digest() -> str:
    from notifications.rules import daily_digest as notify

    now = timezone.now()
    since = now - timedelta(days=1)
    lines, facts = [], []
    for section in DIGEST_SECTIONS:
        line, section_facts = section.function(since)
        lines.append(line)
        facts += section_facts
    notify(f"{timezone.localdate(now):%Y-%m-%d}", lines, facts)  # the day where people read it
    return " ".join(lines)
