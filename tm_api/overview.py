"""The test machines' part of the home page's overview: what is wrong right now.

Each function returns plain dicts (the page renders them, GET /api/overview/ returns them), read
with a bounded number of queries whatever the number of machines or tests.
"""

from datetime import timedelta

from django.urls import reverse

from tm_api import status as S
from tm_api.models import Machine, MasterScenario, Test

FAILED_STATUSES = (S.FAILED, S.ERROR)


def failing_tests(limit: int = 20) -> dict:
    """The failed and errored tests of every machine's latest run, newest stop first, with the
    number of such tests in all (the list stops at `limit`)."""
    latest_runs = Machine.objects.filter(last_run__isnull=False).values("last_run")
    failing = Test.objects.filter(master_scenario__run__in=latest_runs, status__in=FAILED_STATUSES)
    rows = (failing.select_related("machine", "master_scenario", "result")
            .order_by("-timestamp_stop", "-pk")[:limit])
    items = []
    for test in rows:
        result = getattr(test, "result", None)
        items.append({
            "test": test.file_name,
            "path": test.file_path,
            "status": test.status,
            "outcome": result.outcome if result else "",
            "message": (result.message if result else "")[:300],
            "machine": test.machine.machine_name,
            "run": test.master_scenario.run_id,
            "stopped": test.timestamp_stop,
            "url": reverse("tm_api:run", args=[test.master_scenario.run_id]),
        })
    return {"count": failing.count(), "items": items}


def silent_machines(now, silent_after: timedelta, limit: int = 20) -> dict:
    """Runs still going whose machine has reported nothing for `silent_after` (before the
    silence job ends them after TM_SILENCE_MINUTES), longest silence first."""
    quiet = MasterScenario.objects.filter(status__in=S.ONGOING, last_report__lt=now - silent_after)
    rows = quiet.select_related("run__machine").order_by("last_report")[:limit]
    items = [{
        "machine": master.run.machine.machine_name,
        "run": master.run_id,
        "last_report": master.last_report,
        "silent_seconds": int((now - master.last_report).total_seconds()),
        "url": reverse("tm_api:run", args=[master.run_id]),
    } for master in rows]
    return {"count": quiet.count(), "items": items,
            "after_seconds": int(silent_after.total_seconds())}
