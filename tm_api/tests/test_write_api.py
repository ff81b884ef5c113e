"""POST /tm_api/dry_run/, test_start/, test_stop/ with the payloads existing machines send:
codes, replies, matching and the fixes (docs/tm.md)."""

import pytest

from tm_api import status as S
from tm_api.auth import issue_token
from tm_api.models import Machine, MasterScenario, Run, Scenario, Test
from tm_api.tests.conftest import (
    LAMP_1,
    SEED_DRY_RUN,
    SEED_TEST_START,
    SEED_TEST_STOP,
    dry_run_payload,
    scenario,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def statuses(machine_name="machine #1"):
    return list(Test.objects.filter(machine__machine_name=machine_name)
                .order_by("master_scenario_id", "position").values_list("status", flat=True))


def test_seed_dry_run_is_201_and_echoes_the_tree_without_machine_name(machines):
    response = machines.dry_run(SEED_DRY_RUN)
    assert response.status_code == 201
    body = response.json()
    assert "machine_name" not in body
    assert body["timestamp"] == "2018-12-30T13:01:57.461401Z"
    expected = {k: v for k, v in SEED_DRY_RUN["master_scenario"].items()}
    assert body["master_scenario"] == expected
    machine = Machine.objects.get()
    assert machine.machine_name == "machine #1" and machine.status == S.WAITING
    assert statuses() == [S.WAITING] * 4
    master = MasterScenario.objects.get()
    assert master.tests_count == 4 and master.scenarios_count == 2
    assert master.tests_statistics[S.WAITING] == 4
    assert [s.file_name for s in Scenario.objects.order_by("position")] == [
        "scenario_01_feature_lamp.py", "scenario_03_feature_trunk.py"]


def test_seed_start_and_stop_are_202_and_echo_with_iso_timestamps(machines):
    machines.dry_run(dry_run_payload(scenarios=[scenario("s.py", (LAMP_1["file_path"],
                                                                  LAMP_1["file_name"]))]))
    response = machines.post("/tm_api/test_start/", SEED_TEST_START)
    assert response.status_code == 202
    assert response.json() == {**SEED_TEST_START, "timestamp_start": "2018-12-30T13:01:57.573828Z"}
    assert statuses() == [S.RUNNING]
    response = machines.post("/tm_api/test_stop/", SEED_TEST_STOP)
    assert response.status_code == 202
    assert response.json() == {**SEED_TEST_STOP, "timestamp_stop": "2018-12-30T13:01:59.622177Z"}
    test = Test.objects.get()
    assert test.status == S.PASSED and test.duration == 2.048
    master = MasterScenario.objects.get()
    assert master.status == S.PASSED and master.duration == 2.048
    assert Machine.objects.get().status == S.PASSED


def test_null_or_missing_lists_are_empty(machines):
    payload = dry_run_payload(scenarios=None)
    payload["master_scenario"]["scenarios"] = None
    response = machines.dry_run(payload)
    assert response.status_code == 201, response.json()
    assert response.json()["master_scenario"]["scenarios"] == []
    payload["master_scenario"]["scenarios"] = [{"file_path": "/p", "file_name": "s.py",
                                               "script": None, "tests": None}]
    response = machines.dry_run(payload)
    assert response.status_code == 201, response.json()
    assert response.json()["master_scenario"]["scenarios"][0]["tests"] == []
    assert MasterScenario.objects.latest("pk").status == S.EMPTY_ROLL_UP


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda p: p.pop("machine_name"), "machine_name"),
        (lambda p: p.update(machine_name=""), "machine_name"),
        (lambda p: p.update(timestamp="yesterday"), "timestamp"),
        (lambda p: p.pop("master_scenario"), "master_scenario"),
        (lambda p: p["master_scenario"]["scenarios"][0]["tests"][1].pop("file_name"),
         "master_scenario.scenarios[0].tests[1].file_name"),
    ],
)
def test_invalid_dry_runs_are_400_naming_the_field(machines, change, field):
    payload = dry_run_payload()
    change(payload)
    response = machines.dry_run(payload)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and field in body["errors"], body
    assert not Run.objects.exists()


@pytest.mark.parametrize("path", ["/tm_api/dry_run/", "/tm_api/test_start/", "/tm_api/test_stop/"])
@pytest.mark.parametrize("body", ['{"machine_name": "m", ', "[1, 2]", "null"])
def test_malformed_or_non_object_json_is_400(machines, path, body):
    response = machines.post(path, body)
    assert response.status_code == 400
    assert set(response.json()) >= {"detail", "code"}


def test_unknown_machine_is_404_with_reason(machines):
    for response in (machines.start("ghost"), machines.stop("ghost")):
        assert response.status_code == 404
        assert response.json()["code"] == "machine_not_found"
        assert "ghost" in response.json()["detail"]


def test_invalid_status_is_400_listing_allowed_values(machines):
    machines.dry_run(dry_run_payload(scenarios=[scenario("s", ("/s/t", "a.py"))]))
    machines.start()
    response = machines.stop(status="great")
    assert response.status_code == 400
    assert "cancelled, unknown, failed, error, warning, passed" in response.json()["detail"]
    assert statuses() == [S.RUNNING]


def test_stop_without_a_running_test_is_409_and_changes_nothing(machines):
    machines.dry_run(dry_run_payload(scenarios=[scenario("s", ("/s/t", "a.py"))]))
    response = machines.stop()
    assert response.status_code == 409
    assert response.json()["code"] == "no_matching_test"
    assert statuses() == [S.WAITING]
    machines.start()
    assert machines.stop().status_code == 202
    assert machines.stop().status_code == 409  # already stopped


def test_start_without_a_dry_run_listing_the_file_is_409(machines):
    machines.dry_run(dry_run_payload(scenarios=[scenario("s", ("/s/t", "a.py"))]))
    response = machines.start(file_name="not-listed.py")
    assert response.status_code == 409 and "dry run" in response.json()["detail"]
    assert machines.start(file_path="/other").status_code == 409  # exact path too


def test_machine_names_match_case_insensitively(machines):
    machines.dry_run(dry_run_payload("Rack-A", scenarios=[scenario("s", ("/s/t", "a.py"))]))
    assert machines.start("rack-a").status_code == 202
    assert machines.stop("RACK-A").status_code == 202
    machines.dry_run(dry_run_payload("RACK-a", "2018-12-31 00:00:00"))
    assert Machine.objects.count() == 1
    assert Machine.objects.get().machine_name == "Rack-A"


def test_duplicate_files_are_used_up_in_dry_run_order(machines):
    machines.dry_run(dry_run_payload(scenarios=[
        scenario("s1", ("/s/t", "a.py"), ("/s/t", "b.py")),
        scenario("s2", ("/s/t", "a.py")),
    ]))
    machines.start()
    machines.stop(status="failed")
    assert statuses() == [S.FAILED, S.WAITING, S.WAITING]
    machines.start()
    assert statuses() == [S.FAILED, S.WAITING, S.RUNNING]
    machines.stop(status="passed")
    assert statuses() == [S.FAILED, S.WAITING, S.PASSED]
    assert machines.start().status_code == 409  # both occurrences used up
    scenarios = Scenario.objects.order_by("position")
    assert [s.status for s in scenarios] == [S.WAITING, S.PASSED]


def test_starting_a_test_makes_the_running_one_unknown(machines):
    machines.dry_run(dry_run_payload(scenarios=[
        scenario("s1", ("/s/t", "a.py")), scenario("s2", ("/s/t", "b.py"))]))
    machines.start(file_name="a.py")
    machines.start(file_name="b.py")
    assert statuses() == [S.UNKNOWN, S.RUNNING]
    first = Test.objects.get(file_name="a.py")
    assert first.timestamp_stop is not None
    assert [s.status for s in Scenario.objects.order_by("position")] == [S.UNKNOWN, S.RUNNING]


def test_cancelled_cancels_every_ongoing_test_of_the_run(machines):
    machines.dry_run(dry_run_payload(scenarios=[
        scenario("s1", ("/s/t", "a.py"), ("/s/t", "b.py")), scenario("s2", ("/s/t", "c.py"))]))
    machines.start(file_name="a.py")
    machines.stop(file_name="a.py", status="passed")
    machines.start(file_name="b.py")
    assert machines.stop(file_name="b.py", status="cancelled").status_code == 202
    assert statuses() == [S.PASSED, S.CANCELLED, S.CANCELLED]
    master = MasterScenario.objects.get()
    assert master.status == S.CANCELLED and master.timestamp_stop is not None
    assert master.tests_statistics == {**S.empty_counts(), "passed": 1, "cancelled": 2}


def test_a_new_dry_run_makes_ongoing_tests_of_earlier_runs_unknown(machines):
    machines.dry_run(dry_run_payload(scenarios=[scenario("s", ("/s/t", "a.py"), ("/s/t", "b.py"))]))
    machines.start(file_name="a.py")
    machines.dry_run(dry_run_payload(timestamp="2018-12-30 14:00:00",
                                     scenarios=[scenario("s", ("/s/t", "a.py"))]))
    assert statuses() == [S.UNKNOWN, S.UNKNOWN, S.WAITING]
    old, new = MasterScenario.objects.order_by("pk")
    assert old.status == S.UNKNOWN and old.tests_statistics["unknown"] == 2
    assert new.status == S.WAITING
    machine = Machine.objects.get()
    assert machine.last_run_id == new.run_id
    # The start goes to the new run's test.
    machines.start(file_name="a.py")
    assert statuses() == [S.UNKNOWN, S.UNKNOWN, S.RUNNING]


def test_last_run_is_the_one_with_the_largest_client_timestamp(machines):
    machines.dry_run(dry_run_payload(timestamp="2019-01-02 00:00:00"))
    machines.dry_run(dry_run_payload(timestamp="2019-01-01 00:00:00"))  # late upload
    machine = Machine.objects.get()
    assert machine.last_run.timestamp.day == 2


def test_start_timestamp_is_optional(machines):
    machines.dry_run(dry_run_payload(scenarios=[scenario("s", ("/s/t", "a.py"))]))
    response = machines.start()
    assert response.status_code == 202 and response.json()["timestamp_start"].endswith("Z")


def test_client_time_zone_setting(machines, settings):
    settings.TM_CLIENT_TIME_ZONE = "Europe/Warsaw"
    response = machines.dry_run(dry_run_payload(timestamp="2018-07-01 12:00:00"))
    assert response.json()["timestamp"] == "2018-07-01T12:00:00+02:00"
    assert Run.objects.get().timestamp.hour == 10  # stored in UTC


# --- tokens ------------------------------------------------------------------------------------

def test_without_anonymous_machines_a_token_is_needed(client, settings):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = False
    from tm_api.tests.conftest import Machines

    machines = Machines(client)
    response = machines.dry_run()
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Token")
    response = machines.dry_run(HTTP_AUTHORIZATION="Token wrong")
    assert response.status_code == 401 and response.json()["detail"] == "Unknown machine token."
    _, secret = issue_token("team")
    assert machines.dry_run(HTTP_AUTHORIZATION=f"Token {secret}").status_code == 201
    assert machines.dry_run(HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 201
    assert not Run.objects.filter(machine__machine_name="other").exists()


def test_a_wrong_token_is_refused_even_when_anonymous_machines_are_allowed(machines):
    assert machines.dry_run(HTTP_AUTHORIZATION="Token nope").status_code == 401
    assert machines.dry_run(HTTP_AUTHORIZATION="Basic abc").status_code == 401


def test_a_machine_token_only_writes_for_its_machine(machines):
    machines.dry_run()
    token, secret = issue_token("rack 1", Machine.objects.get())
    assert token.digest != secret and secret.startswith("tm_")
    auth = {"HTTP_AUTHORIZATION": f"Token {secret}"}
    assert machines.dry_run(dry_run_payload("MACHINE #1"), **auth).status_code == 201
    response = machines.dry_run(dry_run_payload("machine #2"), **auth)
    assert response.status_code == 403 and "machine #1" in response.json()["detail"]


def test_machines_need_no_csrf_token_and_sessions_do_not_count(client, settings,
                                                                admin_user):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = False
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    from tm_api.tests.conftest import Machines

    assert Machines(strict).dry_run().status_code == 401  # a login is not a machine
    _, secret = issue_token("team")
    response = Machines(strict).dry_run(HTTP_AUTHORIZATION=f"Token {secret}")
    assert response.status_code == 201


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                    "1900-01-01 00:00:00"])
def test_timestamps_outside_the_sane_range_are_400_and_leave_the_machines_area_working(
        machines, reader, moment):
    response = machines.dry_run(dry_run_payload(timestamp=moment))
    assert response.status_code == 400
    assert "between the years 1970 and 2199" in response.json()["errors"]["timestamp"][0]
    assert not Run.objects.exists()
    machines.dry_run(dry_run_payload(scenarios=[scenario("s", ("/s/t", "a.py"))]))
    response = machines.start(timestamp_start=moment)
    assert response.status_code == 400 and "timestamp_start" in response.json()["errors"]
    machines.start()
    response = machines.stop(timestamp_stop=moment)
    assert response.status_code == 400 and "timestamp_stop" in response.json()["errors"]
    assert statuses() == [S.RUNNING]
    assert reader.get("/tm_api/machines/").status_code == 200
    assert reader.get("/machines/").status_code == 200


def test_a_megabyte_of_bad_value_is_not_echoed_back(machines):
    huge = "9" * 1_000_000
    response = machines.dry_run(dry_run_payload(timestamp=huge))
    assert response.status_code == 400 and len(response.content) < 2_000
    machines.dry_run(dry_run_payload(scenarios=[scenario("s", ("/s/t", "a.py"))]))
    machines.start()
    response = machines.stop(status=huge)
    assert response.status_code == 400 and len(response.content) < 2_000


_REPORTS = [
    None, [], "text", 5, {},
    {"machine_name": "m", "file_path": "/t", "file_name": "a.py"},  # a stop: no status
    {"machine_name": "m", "file_path": "", "file_name": "a.py", "timestamp_start": None},
    {"machine_name": " m ", "file_path": "  ", "file_name": 7, "timestamp_start": "2024-01-02"},
    {"machine_name": "m", "file_path": "/t", "file_name": "a.py", "timestamp_start": "nope"},
    {"machine_name": "m" * 257, "file_path": "/t", "file_name": ""},
    {"machine_name": "m\x00", "file_path": "/t\ud800", "file_name": "a.py"},
    {"machine_name": "m", "file_path": "/t", "file_name": "a.py", "status": "passed"},
    {"machine_name": "m", "file_path": "/t", "file_name": "a.py", "status": "PASSED"},
    {"machine_name": "m", "file_path": "/t", "file_name": "a.py", "outcome": "xfailed",
     "attempts": ["failed", "xfailed"], "message": "x" * 70_000, "trace_id": "AB" * 16},
    {"machine_name": "m", "file_path": "/t", "file_name": "a.py", "outcome": "nope",
     "attempts": ["failed"] * 1000, "trace_id": "0" * 32, "timestamp_stop": []},
    {"machine_name": "m", "file_path": "/t", "file_name": "a.py", "status": "failed",
     "timestamp_stop": "2024-01-02 10:00:00.5", "stdout": "  kept  "},
]


@pytest.mark.parametrize("view", ["TestStartView", "TestStopView", "DryRunView"])
def test_reports_validate_as_a_new_serializer_would_with_one_serializer_per_thread(view):
    # MachineReport keeps one serializer per class and thread (views.validated): every report,
    # in any order, must get what a serializer of its own gives, and the same 400 when refused.
    from rest_framework.exceptions import ValidationError

    from tm_api import views

    input_class = getattr(views, view).input_class
    reports = [*_REPORTS, dry_run_payload("m", "2024-05-01 10:00:00", [scenario("s.py")]),
               {**dry_run_payload("m", "2024-05-01 10:00:00", [scenario("s.py")]),
                "master_scenario": {"scenarios": "x"}}]
    for data in reports * 2:  # the second round after every other report has been validated
        own = input_class(data=data)
        if own.is_valid():
            assert views.validated(input_class, data) == own.validated_data
        else:
            with pytest.raises(ValidationError) as refused:
                views.validated(input_class, data)
            assert refused.value.detail == own.errors
