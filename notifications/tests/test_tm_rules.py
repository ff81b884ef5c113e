"""Test-machine rules, end to end: reports through /tm_api reach a receiver through the worker."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.jobs import run_job
from notifications.models import Channel, Delivery, Notification
from plumbing.times import exact
from tm_api.models import MasterScenario, Test

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MACHINE = "machine #1"


@pytest.fixture(autouse=True)
def open_machines(settings):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = True


def dry_run(client, files=("01_test.py", "02_test.py", "03_test.py")):
    body = {
        "machine_name": MACHINE, "timestamp": "2018-12-30 13:01:57.461401",
        "master_scenario": {
            "file_path": "/vtm/scenarios", "file_name": "scenario_master.py", "script": "",
            "scenarios": [{"file_path": "/vtm/scenarios", "file_name": "scenario_01.py",
                           "script": "", "tests": [{"file_path": "/vtm/tests", "file_name": name,
                                                    "script": "pass"} for name in files]}],
        },
    }
    assert client.post("/tm_api/dry_run/", body, content_type="application/json").status_code == 201


def run_test(client, name, status):
    body = {"machine_name": MACHINE, "file_path": "/vtm/tests", "file_name": name}
    assert client.post("/tm_api/test_start/", {**body, "timestamp_start": "2018-12-30 13:02:00"},
                       content_type="application/json").status_code == 202
    assert client.post("/tm_api/test_stop/", {**body, "status": status,
                                              "timestamp_stop": "2018-12-30 13:02:05"},
                       content_type="application/json").status_code == 202


def test_a_failed_run_reaches_a_discord_receiver_through_the_worker(client, receiver, run_worker):
    Channel.objects.create(name="qa", kind="discord", url=receiver.url, rules=["run_failed"])
    dry_run(client)
    run_test(client, "01_test.py", "passed")
    run_test(client, "02_test.py", "failed")
    assert not Notification.objects.exists()  # 03 still waiting: the run is not over
    run_test(client, "03_test.py", "error")
    notification = Notification.objects.get()
    assert notification.rule == "run_failed"
    assert notification.title == "machine #1: run scenario_master.py finished with 1 failed, 1 error"
    assert "FAILED  /vtm/tests/02_test.py" in notification.text
    assert "ERROR  /vtm/tests/03_test.py" in notification.text
    run_worker()
    [request] = receiver.requests
    body = request["json"]
    assert body["username"] == "Monitor" and "1 failed, 1 error" in body["content"]
    assert body["embeds"][0]["url"].endswith(f"/machines/runs/{MasterScenario.objects.get().run_id}/")
    assert Delivery.objects.get().state == "delivered"


def test_a_passing_run_notifies_nobody(client):
    Channel.objects.create(name="qa", kind="discord", url="http://127.0.0.1:1/", rules=["run_failed"])
    dry_run(client, files=("01_test.py",))
    run_test(client, "01_test.py", "passed")
    assert not Notification.objects.exists()


def test_a_channel_scoped_to_other_machines_gets_nothing(client):
    Channel.objects.create(name="lab", kind="slack", url="http://127.0.0.1:1/", rules=["run_failed"],
                           machines="lab-2")
    dry_run(client, files=("01_test.py",))
    run_test(client, "01_test.py", "failed")
    assert Notification.objects.count() == 1 and not Delivery.objects.exists()


def test_a_silent_machine_ends_its_run_once_and_notifies_once(client, settings):
    settings.TM_SILENCE_MINUTES = 15
    settings.TIME_ZONE = "Europe/Warsaw"
    Channel.objects.create(name="qa", kind="slack", url="http://127.0.0.1:1/",
                           rules=["machine_silent", "run_failed"])
    dry_run(client)
    run_test(client, "01_test.py", "failed")
    body = {"machine_name": MACHINE, "file_path": "/vtm/tests", "file_name": "02_test.py"}
    client.post("/tm_api/test_start/", body, content_type="application/json")
    assert "0 silent" in run_job("detect_silent_machines").last_detail  # not silent yet
    quiet = timezone.now() - timedelta(minutes=16)
    MasterScenario.objects.update(last_report=quiet)
    assert "1 silent run(s) ended: machine #1" in run_job("detect_silent_machines").last_detail
    silent = Notification.objects.get(rule="machine_silent")
    assert ["Last report", exact(quiet)] in silent.facts and exact(quiet).endswith(" Europe/Warsaw")
    assert f"No report since {exact(quiet)};" in silent.text
    assert sorted(Test.objects.values_list("status", flat=True)) == ["failed", "unknown", "unknown"]
    master = MasterScenario.objects.get()
    assert master.status == "unknown" and master.tests_statistics["unknown"] == 2
    rules = sorted(Notification.objects.values_list("rule", flat=True))
    assert rules == ["machine_silent", "run_failed"]  # the run ended with a failed test
    assert "0 silent" in run_job("detect_silent_machines").last_detail  # idempotent
    assert Notification.objects.count() == 2
