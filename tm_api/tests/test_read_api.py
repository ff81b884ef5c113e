"""The read endpoints of the test-machine API: paths, fields, pagination envelope, access,
schema."""

import pytest

from tm_api import status as S
from tm_api.models import Machine, MasterScenario, Run, Scenario, Test
from tm_api.tests.conftest import SEED_DRY_RUN, dry_run_payload, scenario

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def seeded(machines):
    machines.dry_run(SEED_DRY_RUN)
    machines.start(file_path="/PycharmProjects/system", file_name="01_01_test_lamp.py",
                   timestamp_start="2018-12-30 13:01:58")
    machines.stop(file_path="/PycharmProjects/system", file_name="01_01_test_lamp.py",
                  status="warning", timestamp_stop="2018-12-30 13:02:00.5")
    return Machine.objects.get()


def test_reads_need_login_unless_dashboards_are_public(client, seeded, settings,
                                                        django_user_model):
    settings.DASHBOARDS_PUBLIC = False
    paths = ["/tm_api/machines/", f"/tm_api/machine_last_data/{seeded.pk}/",
             f"/tm_api/machine_dry_run_datas/{seeded.pk}", f"/tm_api/test/{Test.objects.first().pk}"]
    for path in paths:
        assert client.get(path).status_code == 403, path
    client.force_login(django_user_model.objects.create_user("ada", password="x"))
    for path in paths:
        assert client.get(path).status_code == 200, path


def test_script_details(reader, seeded):
    test = Test.objects.get(file_name="01_01_test_lamp.py")
    body = reader.get(f"/tm_api/test/{test.pk}").json()
    assert body["file_name"] == "01_01_test_lamp.py"
    assert body["file_path"] == "/PycharmProjects/system"
    assert body["script"].startswith("from time import sleep")
    assert body["timestamp_start"] == "2018-12-30T13:01:58Z"
    assert body["timestamp_stop"] == "2018-12-30T13:02:00.500000Z"
    assert body["status"] == "warning" and body["duration"] == 2.5
    scenario_row = Scenario.objects.get(position=0)
    body = reader.get(f"/tm_api/scenario/{scenario_row.pk}").json()
    assert body["file_name"] == "scenario_01_feature_lamp.py" and body["status"] == "waiting"
    master = MasterScenario.objects.get()
    body = reader.get(f"/tm_api/master_scenario/{master.pk}").json()
    assert body["script"] == "import os\nfrom run import SCENARIOS_DIR"
    assert reader.get("/tm_api/test/999999").status_code == 404
    assert reader.get("/tm_api/test/999999").json()["code"] == "not_found"


def test_machine_last_data_has_the_seed_fields(reader, seeded):
    body = reader.get(f"/tm_api/machine_last_data/{seeded.pk}/").json()
    assert body["machine_name"] == "machine #1"
    last = body["last_master_scenario"]
    run = Run.objects.get()
    assert last["pk"] == run.master_scenario.pk and last["dryrundata"] == run.pk
    assert last["file_name"] == "scenario_master.py"
    assert last["status"] == "waiting"
    assert last["tests_statistics"] == {**S.empty_counts(), "waiting": 3, "warning": 1}
    assert last["tests_count"] == 4 and last["scenarios_count"] == 2
    assert last["timestamp_start"] == "2018-12-30T13:01:58Z" and last["timestamp_stop"] is None
    assert last["duration"] is None
    assert [s["file_name"] for s in last["scenarios"]] == [
        "scenario_01_feature_lamp.py", "scenario_03_feature_trunk.py"]
    first = last["scenarios"][0]
    assert set(first) >= {"file_name", "status", "pk", "tests"}
    assert first["tests"][0] == {"file_name": "01_01_test_lamp.py", "status": "warning",
                                 "pk": first["tests"][0]["pk"], "duration": 2.5}


def test_machine_without_runs_is_not_available(reader):
    machine = Machine.objects.create(machine_name="idle")
    assert reader.get(f"/tm_api/machine_last_data/{machine.pk}/").json() == {
        "id": machine.pk, "machine_name": "idle", "last_master_scenario": None}
    body = reader.get("/tm_api/machines/").json()
    assert body["results"] == [{"id": machine.pk, "machine_name": "idle",
                                "status": "not-available"}]


def test_machines_list_is_paginated_with_the_seed_envelope(reader, machines):
    for n in range(12):
        machines.dry_run(dry_run_payload(f"m{n:02d}"))
    body = reader.get("/tm_api/machines/").json()
    assert {k: v for k, v in body.items() if k != "results"} == {
        "count": 12, "page_number": 1, "total_pages": 2, "has_previous": False,
        "previous_page_number": None, "has_next": True, "next_page_number": 2, "page_size": 10}
    assert [m["machine_name"] for m in body["results"]][:2] == ["m00", "m01"]
    assert body["results"][0]["status"] == "waiting"
    assert body["results"][0]["tests_statistics"]["waiting"] == 4
    page = reader.get("/tm_api/machines/?page=2&page_size=5").json()
    assert page["page_number"] == 2 and len(page["results"]) == 5 and page["page_size"] == 5
    assert reader.get("/tm_api/machines/?page_size=1000").json()["page_size"] == 100
    assert reader.get("/tm_api/machines/?page=9").status_code == 404


def test_machine_runs_newest_first(reader, machines):
    machines.dry_run(dry_run_payload(timestamp="2019-01-01 10:00:00",
                                     scenarios=[scenario("s", ("/s/t", "a.py"))]))
    machines.start()
    machines.stop(status="failed")
    machines.dry_run(dry_run_payload(timestamp="2019-01-02 10:00:00"))
    machine = Machine.objects.get()
    body = reader.get(f"/tm_api/machine_dry_run_datas/{machine.pk}").json()
    assert body["count"] == 2
    newest, oldest = body["results"]
    assert newest["timestamp"] == "2019-01-02T10:00:00Z" and newest["status"] == "waiting"
    assert oldest["status"] == "failed" and oldest["tests_statistics"]["failed"] == 1
    assert reader.get("/tm_api/machine_dry_run_datas/999999").status_code == 404


def test_schema_lists_every_tm_api_path(admin_client):
    schema = admin_client.get("/api/schema/?format=json").json()
    for path in ["/tm_api/dry_run/", "/tm_api/test_start/", "/tm_api/test_stop/",
                 "/tm_api/test/{id}", "/tm_api/scenario/{id}", "/tm_api/master_scenario/{id}",
                 "/tm_api/machines/", "/tm_api/machine_dry_run_datas/{id}",
                 "/tm_api/machine_last_data/{id}/"]:
        assert path in schema["paths"], path
    stop = schema["paths"]["/tm_api/test_stop/"]["post"]
    assert {"202", "400", "401", "404", "409"} <= set(stop["responses"])


def test_machine_token_command(capsys):
    from django.core.management import call_command

    from plumbing.tokens import token_matches
    from tm_api.models import MachineToken

    call_command("machine_token", "create", "rack 3", "--machine", "Rack-3")
    secret = capsys.readouterr().out.strip()
    token = MachineToken.objects.get()
    assert token_matches(secret, token.digest) and token.machine.machine_name == "Rack-3"
    call_command("machine_token", "list")
    listing = capsys.readouterr().out
    assert "rack 3" in listing and secret not in listing
    call_command("machine_token", "revoke", str(token.pk))
    assert not MachineToken.objects.exists()
