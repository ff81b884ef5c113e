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

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from notifications.models import Delivery, Job, Notification

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
            last_detail=f"skipped at {now:%Y-%m-%d %H:%M:%S}: another run holds the lease",
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
