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


def run_suite(client, commit, outcomes, minute):
    """A run of two tests through the machine API, ending with the given statuses."""
    body = {
        "machine_name": MACHINE, "timestamp": f"2026-01-01 10:{minute:02d}:00", "commit": commit,
        "branch": "main",
        "master_scenario": {
            "file_path": "/ci", "file_name": "pytest", "script": "",
            "scenarios": [{"file_path": "tests", "file_name": "test_api.py", "script": "",
                           "tests": [{"file_path": "tests/test_api.py", "file_name": name,
                                      "script": ""} for name in outcomes]}],
        },
    }
    assert client.post("/tm_api/dry_run/", body, content_type="application/json").status_code == 201
    for name, status in outcomes.items():
        test = {"machine_name": MACHINE, "file_path": "tests/test_api.py", "file_name": name}
        assert client.post("/tm_api/test_start/", test,
                           content_type="application/json").status_code == 202
        assert client.post("/tm_api/test_stop/", {**test, "status": status},
                           content_type="application/json").status_code == 202


def test_a_new_flaky_test_reaches_a_signed_webhook_once(client, receiver, run_worker):
    Channel.objects.create(name="flaky", kind="webhook", url=receiver.url, secret="k3y",
                           rules=["new_flaky_test"])
    run_suite(client, "c1", {"test_login": "passed", "test_broken": "failed"}, 0)
    run_suite(client, "c1", {"test_login": "passed", "test_broken": "failed"}, 1)
    assert not Notification.objects.filter(rule="new_flaky_test").exists()
    # The same commit fails test_login once: flaky. test_broken always fails: broken, quiet.
    run_suite(client, "c1", {"test_login": "failed", "test_broken": "failed"}, 2)
    notification = Notification.objects.get(rule="new_flaky_test")
    assert notification.title == "New flaky test: tests/test_api.py::test_login"
    assert notification.text == "passed and failed on commit c1"
    assert ["Commit", "c1"] in notification.facts and ["Branch", "main"] in notification.facts
    assert notification.link.endswith(
        "/machines/tests/history/?name=tests%2Ftest_api.py%3A%3Atest_login")
    run_worker()
    [request] = receiver.requests
    assert request["json"]["rule"] == "new_flaky_test"
    assert request["json"]["title"] == notification.title
    from notifications import messages

    assert messages.verify_signature("k3y", request["headers"]["X-Monitor-Timestamp"],
                                     request["raw"], request["headers"]["X-Monitor-Signature"])
    # Still flaky after the next run: not new, no second notification.
    run_suite(client, "c1", {"test_login": "passed", "test_broken": "failed"}, 3)
    assert Notification.objects.filter(rule="new_flaky_test").count() == 1


def test_a_quarantined_test_that_turns_flaky_stays_quiet(client, django_user_model):
    from tm_api import history

    Channel.objects.create(name="flaky", kind="webhook", url="http://127.0.0.1:1/",
                           rules=["new_flaky_test"])
    run_suite(client, "c1", {"test_login": "passed"}, 0)
    ada = django_user_model.objects.create_user("ada", password="x")
    history.quarantine(*history.resolve("tests/test_api.py::test_login"), "known", ada)
    run_suite(client, "c1", {"test_login": "failed"}, 1)
    assert not Notification.objects.filter(rule="new_flaky_test").exists()
