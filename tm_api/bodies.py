"""JSON bodies shared by the REST read API and the live frames (one builder per body, so a page
that loads over REST and then follows a socket sees the same shape)."""

from tm_api import status as S
from tm_api.models import Machine, MasterScenario, Scenario, Test


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
        )
    return body


def last_master_scenario(master: MasterScenario) -> dict:
    scenarios = list(
        Scenario.objects.filter(master_scenario=master)
        .order_by("position")
        .values("pk", "file_name", "file_path", "status", "tests_count")
    )
    by_scenario = {scenario["pk"]: scenario for scenario in scenarios}
    for scenario in scenarios:
        scenario["tests"] = []
    tests = (
        Test.objects.filter(master_scenario=master)
        .order_by("position")
        .values_list("pk", "scenario_id", "file_name", "status", "timestamp_start", "timestamp_stop")
    )
    for pk, scenario_id, file_name, status, start, stop in tests:
        by_scenario[scenario_id]["tests"].append(
            {"file_name": file_name, "status": status, "pk": pk,
             "duration": S.duration_seconds(start, stop)}
        )
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
    }


def machine_last_data(machine: Machine) -> dict:
    """Body of /tm_api/machine_last_data/<pk>/ and of `machine_data` frames."""
    master = None
    if machine.last_run_id is not None:
        master = MasterScenario.objects.select_related("run").get(run_id=machine.last_run_id)
    return {
        "id": machine.pk,
        "machine_name": machine.machine_name,
        "last_master_scenario": None if master is None else last_master_scenario(master),
    }
