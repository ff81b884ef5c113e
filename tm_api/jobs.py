"""The test-machine app's scheduled jobs and its parts of the shared ones (notifications.jobs)."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count

from notifications.jobs import digest_section, job, prunes_older_than
from tm_api.models import MasterScenario, Run
from tm_api.services import silence_runs


@job("detect_silent_machines", "* * * * *",
     "End runs whose machine has been silent for TM_SILENCE_MINUTES (tests become unknown) "
     "and notify machine_silent.")
def detect_silent_machines() -> str:
    silenced = silence_runs(timedelta(minutes=settings.TM_SILENCE_MINUTES))
    names = ", ".join(f"{m.run.machine.machine_name} (run {m.run_id})" for m in silenced)
    return f"{len(silenced)} silent run(s) ended" + (f": {names}" if names else "")


prune_runs = prunes_older_than("runs", 30, Run, "received", "TM_RUN_RETENTION_DAYS")


@digest_section("test runs", order=10)
def digest_runs(since):
    runs = MasterScenario.objects.filter(run__received__gte=since)
    by_status = dict(runs.values_list("status").annotate(n=Count("pk")))
    failing_runs = runs.filter(status__in=["failed", "error"]).count()
    line = (f"Test runs: {sum(by_status.values())} started, {failing_runs} ending failed or "
            "error.")
    return line, [["Runs", sum(by_status.values())], ["Failing runs", failing_runs]]
