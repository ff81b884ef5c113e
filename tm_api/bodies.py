"""JSON bodies shared by the REST read API and the live frames (one builder per body, so a page
that loads over REST and then follows a socket sees the same shape)."""

from datetime import UTC, datetime, timedelta

from tm_api import progress as P
from tm_api import status as S
from tm_api.models import Machine, MasterScenario, Scenario, Test

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def version(master: MasterScenario) -> int:
    """The run's version: its last report's server time in microseconds. A live page keeps, per
    run, scenario and test, the version it last showed, and ignores older news of it: frames of
    different server processes may arrive out of order."""
    return (master.last_report - _EPOCH) // _MICROSECOND


def progress(master: MasterScenario) -> dict:
    """How far the run is and the time it has left (tm_api.progress.summary), as of its latest
    report: the same in a frame and in a later read, so a page counts down from it itself."""
    counts = master.tests_statistics
    done = sum(n for status, n in counts.items() if status not in S.ONGOING)
    return P.summary(master.progress, master.tests_count, done, S.is_ongoing(counts))


def run_summary(master: MasterScenario) -> dict:
    """A run as the machine page lists it (and as `run_data` frames carry it)."""
    run = master.run
    return {
        "id": run.pk,
        "pk": run.pk,
        "status": master.status,
        "timestamp": S.iso(run.timestamp),
        "master_scenario": master.pk,
        "file_name": master.file_name,
        "timestamp_start": S.iso(master.timestamp_start),
        "timestamp_stop": S.iso(master.timestamp_stop),
        "duration": master.duration,
        "tests_count": master.tests_count,
        "scenarios_count": master.scenarios_count,
        "tests_statistics": master.tests_statistics,
        "version": version(master),
        "commit": run.commit,
        "branch": run.branch,
        "build_url": run.build_url,
        "progress": progress(master),
    }


def machine_status(machine: Machine, master: MasterScenario | None) -> dict:
    """A machine as the machine list shows it; `master` is its last run's master scenario."""
    body = {"id": machine.pk, "machine_name": machine.machine_name,
            "status": S.NOT_AVAILABLE if master is None else master.status}
    if master is not None:
        body.update(
            last_run=master.run_id,
            timestamp=S.iso(master.run.timestamp),
            tests_count=master.tests_count,
            tests_statistics=master.tests_statistics,
            version=version(master),
        )
    return body


def test_row(pk, file_name, status, start, stop) -> dict:
    """A test in a run's tree."""
    return {"file_name": file_name, "status": status, "pk": pk,
            "duration": S.duration_seconds(start, stop)}


def scenario_row(scenario: Scenario, tests: list) -> dict:
    """A scenario in a run's tree, with `tests` (all of them, or in a delta the changed ones)."""
    return {"pk": scenario.pk, "file_name": scenario.file_name, "file_path": scenario.file_path,
            "status": scenario.status, "tests_count": scenario.tests_count,
            "tests_statistics": scenario.tests_statistics, "tests": tests}


def run_tree(master: MasterScenario, scenarios: list) -> dict:
    """The `last_master_scenario` body: the run's roll-ups and `scenarios` (scenario_row each)."""
    return {
        "pk": master.pk,
        "file_name": master.file_name,
        "file_path": master.file_path,
        "timestamp_start": S.iso(master.timestamp_start),
        "timestamp_stop": S.iso(master.timestamp_stop),
        "duration": master.duration,
        "status": master.status,
        "tests_statistics": master.tests_statistics,
        "tests_count": master.tests_count,
        "scenarios_count": master.scenarios_count,
        "scenarios": scenarios,
        "dryrundata": master.run_id,
        "timestamp": S.iso(master.run.timestamp),
        "version": version(master),
        "progress": progress(master),
    }


def last_master_scenario(master: MasterScenario) -> dict:
    """The whole run as a tree (two queries, whatever its size)."""
    scenarios = list(
        Scenario.objects.filter(master_scenario=master).order_by("position")
        .only("pk", "file_name", "file_path", "status", "tests_count", "tests_statistics")
    )
    tests = {scenario.pk: [] for scenario in scenarios}
    rows = (
        Test.objects.filter(master_scenario=master)
        .order_by("position")
        .values_list("pk", "scenario_id", "file_name", "status", "timestamp_start", "timestamp_stop")
    )
    for pk, scenario_id, file_name, status, start, stop in rows:
        tests[scenario_id].append(test_row(pk, file_name, status, start, stop))
    return run_tree(master, [scenario_row(scenario, tests[scenario.pk]) for scenario in scenarios])


def machine_last_data(machine: Machine) -> dict:
    """Body of /tm_api/machine_last_data/<pk>/ and of the `machine_data` frame a last-run socket
    gets when it opens."""
    master = None
    if machine.last_run_id is not None:
        master = MasterScenario.objects.select_related("run").get(run_id=machine.last_run_id)
    return {
        "id": machine.pk,
        "machine_name": machine.machine_name,
        "last_master_scenario": None if master is None else last_master_scenario(master),
    }
