"""The test-machine app's scheduled jobs and its parts of the shared ones (notifications.jobs)."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from notifications.jobs import delete_in_batches, digest_section, job, prunes
from tm_api.models import MasterScenario, Run
from tm_api.services import silence_runs


@job("detect_silent_machines", "* * * * *",
     "End runs whose machine has been silent for TM_SILENCE_MINUTES (tests become unknown) "
     "and notify machine_silent.")
def detect_silent_machines() -> str:
    silenced = silence_runs(timedelta(minutes=settings.TM_SILENCE_MINUTES))
    names = ", ".join(f"{m.run.machine.machine_name} (run {m.run_id})" for m in silenced)
    return f"{len(silenced)} silent run(s) ended" + (f": {names}" if names else "")


@prunes("runs", order=30)
def prune_runs() -> int:
    cutoff = timezone.now() - timedelta(days=settings.TM_RUN_RETENTION_DAYS)
    return delete_in_batches(Run.objects.filter(received__lt=cutoff))


@digest_section("test runs", order=10)
def digest_runs(since):
    runs = MasterScenario.objects.filter(run__received__gte=since)
    by_status = dict(runs.values_list("status").annotate(n=Count("pk")))
    failing_runs = runs.filter(status__in=["failed", "error"]).count()
    line = (f"Test runs: {sum(by_status.values())} started, {failing_runs} ending failed or "
            "error.")
    return line, [["Runs", sum(by_status.values())], ["Failing runs", failing_runs]]
