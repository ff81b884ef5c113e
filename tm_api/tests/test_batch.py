"""POST /tm_api/batch/: many reports of one machine, in order, in one transaction, once."""

import json
import uuid

import pytest

from idempotency.models import IdempotentRequest
from tm_api import status as S
from tm_api.auth import issue_token
from tm_api.models import Machine, MasterScenario, Run, Test
from tm_api.tests.conftest import dry_run_payload, scenario

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

MACHINE = "rack-3"
FILES = [("/s/t", "a.py"), ("/s/t", "b.py"), ("/s/t", "c.py")]


def dry_run(timestamp="2024-05-01 10:00:00", files=FILES, name=None):
    payload = dry_run_payload(MACHINE, timestamp, [scenario("s.py", *files)])
    del payload["machine_name"]
    if name:
        payload["machine_name"] = name
    return {"type": "dry_run", **payload}


def start(file_name, file_path="/s/t", **extra):
    return {"type": "test_start", "file_path": file_path, "file_name": file_name, **extra}


def stop(file_name, status="passed", file_path="/s/t", **extra):
    return {"type": "test_stop", "file_path": file_path, "file_name": file_name,
            "status": status, **extra}


def post_batch(client, reports, machine_name=MACHINE, **headers):
    body = {"machine_name": machine_name, "reports": reports}
    return client.post("/tm_api/batch/", json.dumps(body), content_type="application/json",
                       **headers)


def statuses(machine_name=MACHINE):
    return dict(Test.objects.filter(machine__machine_name=machine_name)
                .order_by("master_scenario_id", "position").values_list("file_name", "status"))


@pytest.fixture
def batch(client, settings):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = True
    return lambda reports, **kw: post_batch(client, reports, **kw)


def test_a_whole_run_in_one_batch_is_applied_in_order(batch):
    response = batch([dry_run(), start("a.py", timestamp_start="2024-05-01 10:00:01"),
                      stop("a.py", timestamp_stop="2024-05-01 10:00:03"),
                      start("b.py"), stop("b.py", "failed"), start("c.py")])
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["machine_name"] == MACHINE
    assert (body["applied"], body["refused"]) == (6, 0)
    assert [(r["type"], r["status"]) for r in body["results"]] == [
        ("dry_run", 201), ("test_start", 202), ("test_stop", 202), ("test_start", 202),
        ("test_stop", 202), ("test_start", 202)]
    run = Run.objects.get()
    assert body["results"][0]["run"] == run.pk
    assert statuses() == {"a.py": S.PASSED, "b.py": S.FAILED, "c.py": S.RUNNING}
    a = Test.objects.get(file_name="a.py")
    assert body["results"][1]["test"] == a.pk and a.duration == 2.0
    master = MasterScenario.objects.get()
    assert master.status == S.RUNNING
    assert master.tests_statistics[S.PASSED] == 1 and master.tests_statistics[S.FAILED] == 1


def test_order_matters_a_stop_before_its_start_is_refused(batch):
    batch([dry_run()])
    body = batch([stop("a.py"), start("a.py")]).json()
    assert [r["status"] for r in body["results"]] == [409, 202]
    assert statuses()["a.py"] == S.RUNNING


def test_refused_reports_change_nothing_and_do_not_stop_the_others(batch):
    response = batch([start("a.py"), dry_run(), stop("a.py"), start("ghost.py"), start("a.py"),
                      stop("a.py")])
    assert response.status_code == 200
    body = response.json()
    assert (body["applied"], body["refused"]) == (3, 3)
    results = body["results"]
    assert results[0]["status"] == 404 and results[0]["code"] == "machine_not_found"
    assert MACHINE in results[0]["detail"]
    assert [r["status"] for r in results[1:]] == [201, 409, 409, 202, 202]
    assert results[2]["code"] == results[3]["code"] == "no_matching_test"
    assert "ghost.py" in results[3]["detail"]
    assert statuses() == {"a.py": S.PASSED, "b.py": S.WAITING, "c.py": S.WAITING}
    master = MasterScenario.objects.get()
    assert master.tests_statistics[S.PASSED] == 1 and master.tests_statistics[S.WAITING] == 2


def test_reports_may_name_their_machine_in_any_case_but_not_another(batch):
    assert batch([dry_run(name="RACK-3")]).status_code == 200
    response = batch([start("a.py", machine_name="Rack-3"), start("b.py", machine_name="rack-4")])
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and list(body["errors"]) == ["reports[1].machine_name"]
    assert statuses()["a.py"] == S.WAITING


@pytest.mark.parametrize("bad, field", [
    ({"type": "test_pause", "file_path": "/s/t", "file_name": "a.py"}, "reports[2].type"),
    ({"file_path": "/s/t", "file_name": "a.py"}, "reports[2].type"),
    (stop("a.py", "great"), "reports[2].status"),
    (start("a.py", timestamp_start="yesterday"), "reports[2].timestamp_start"),
    ({"type": "test_start", "file_path": "/s/t"}, "reports[2].file_name"),
    (start("x" * 257), "reports[2].file_name"),
    ("test_start a.py", "reports[2]"),
    ({**dry_run(), "master_scenario": {"file_path": "/m", "file_name": "m.py", "scenarios": [
        {"file_path": "/s", "file_name": "s.py", "tests": [{"file_path": "/t"}]}]}},
     "reports[2].master_scenario.scenarios[0].tests[0].file_name"),
])
def test_a_malformed_report_is_400_with_its_index_and_nothing_is_applied(batch, bad, field):
    response = batch([dry_run(), start("a.py"), bad, stop("a.py")])
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and field in body["errors"], body
    assert body["detail"].startswith(field)
    assert not Machine.objects.exists() and not Run.objects.exists()


@pytest.mark.parametrize("body", [
    {"reports": [start("a.py")]},
    {"machine_name": MACHINE},
    {"machine_name": MACHINE, "reports": []},
    {"machine_name": MACHINE, "reports": "a.py"},
    [start("a.py")],
])
def test_a_malformed_batch_is_400(client, settings, body):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = True
    response = client.post("/tm_api/batch/", json.dumps(body), content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] in ("invalid", "parse_error")


def test_at_most_max_reports_per_batch(batch):
    from tm_api.batch import MAX_REPORTS

    response = batch([dry_run()] + [start("a.py")] * MAX_REPORTS)
    assert response.status_code == 400
    assert f"no more than {MAX_REPORTS}" in response.json()["errors"]["reports"][0]
    assert not Run.objects.exists()


def test_a_batch_is_one_transaction_a_crash_applies_nothing(batch, monkeypatch):
    from tm_api import services

    batch([dry_run()])

    def crash(*args, **kwargs):  # after the batch's writes, before its commit
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services.live, "publish_run", crash)
    with pytest.raises(RuntimeError):
        batch([start("a.py"), stop("a.py"), start("b.py")])
    assert statuses() == {"a.py": S.WAITING, "b.py": S.WAITING, "c.py": S.WAITING}
    assert MasterScenario.objects.get().tests_statistics[S.WAITING] == 3


def test_a_retried_batch_is_answered_again_and_applied_once(batch):
    batch([dry_run()])
    reports = [start("a.py"), stop("a.py"), start("a.py"), start("b.py")]
    first = batch(reports, HTTP_IDEMPOTENCY_KEY="batch-1")
    assert first.status_code == 200
    assert [r["status"] for r in first.json()["results"]] == [202, 202, 409, 202]
    again = batch(reports, HTTP_IDEMPOTENCY_KEY="batch-1")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert statuses() == {"a.py": S.PASSED, "b.py": S.RUNNING, "c.py": S.WAITING}
    # Without the key the same reports are new reports: b.py is already running.
    assert [r["status"] for r in batch(reports).json()["results"]] == [409, 409, 409, 409]


def test_a_key_reused_with_other_reports_or_on_another_endpoint_is_422(batch, client):
    batch([dry_run()], HTTP_IDEMPOTENCY_KEY="k-1")
    response = batch([dry_run("2024-05-02 10:00:00")], HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Run.objects.count() == 1
    single = client.post("/tm_api/test_start/", json.dumps(
        {"machine_name": MACHINE, "file_path": "/s/t", "file_name": "a.py"}),
        content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert single.status_code == 422
    assert statuses()["a.py"] == S.WAITING


def test_a_malformed_batch_stores_no_key(batch):
    assert batch([start("a.py", timestamp_start="soon")],
                 HTTP_IDEMPOTENCY_KEY="k-2").status_code == 400
    assert not IdempotentRequest.objects.exists()
    assert batch([dry_run()], HTTP_IDEMPOTENCY_KEY="k-2").status_code == 200


# --- tokens: as the per-report endpoints -------------------------------------------------------

def test_without_a_token_it_is_401_when_anonymous_machines_are_off(client, settings):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = False
    response = post_batch(client, [dry_run()])
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Token realm="machines"'
    response = post_batch(client, [dry_run()], HTTP_AUTHORIZATION="Token tm_wrong")
    assert response.status_code == 401
    assert not Run.objects.exists()


def test_a_machine_token_writes_its_own_machine_only(client, settings):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = False
    record = Machine.objects.create(machine_name=MACHINE)
    _, secret = issue_token("rack 3", machine=record)
    auth = {"HTTP_AUTHORIZATION": f"Token {secret}"}
    assert post_batch(client, [dry_run(), start("a.py")], **auth).status_code == 200
    other = post_batch(client, [dry_run()], machine_name="rack-4", **auth)
    assert other.status_code == 403 and "rack-3" in other.json()["detail"]
    assert not Machine.objects.filter(machine_name="rack-4").exists()
    assert statuses() == {"a.py": S.RUNNING, "b.py": S.WAITING, "c.py": S.WAITING}


def test_a_team_token_writes_any_machine(client, settings):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = False
    _, secret = issue_token("qa team")
    response = post_batch(client, [dry_run(), start("a.py")], machine_name="anything",
                          HTTP_AUTHORIZATION=f"Token {secret}")
    assert response.status_code == 200 and response.json()["applied"] == 2


def test_a_session_is_no_machine(client, settings, django_user_model):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = False
    client.force_login(django_user_model.objects.create_user("ada", password="pw-ada-1815"))
    assert post_batch(client, [dry_run()]).status_code == 401


# --- through a real server (the write threads of the server's event loop) --------------------

def test_a_batch_through_a_real_server(asgi_server, settings):
    import requests

    from tm_api.auth import issue_token as issue

    _, secret = issue("ci")
    url = asgi_server.url + "/tm_api/batch/"
    reports = [dry_run(), start("a.py"), stop("a.py"), start("b.py"), stop("b.py", "error"),
               stop("c.py")]
    headers = {"Authorization": f"Token {secret}", "Idempotency-Key": "real-1"}
    body = {"machine_name": MACHINE, "reports": reports}
    first = requests.post(url, json=body, headers=headers, timeout=10)
    assert first.status_code == 200, first.text
    assert [r["status"] for r in first.json()["results"]] == [201, 202, 202, 202, 202, 409]
    again = requests.post(url, json=body, headers=headers, timeout=10)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert statuses() == {"a.py": S.PASSED, "b.py": S.ERROR, "c.py": S.WAITING}
    assert requests.post(url, json={"machine_name": MACHINE, "reports": [start("c.py"), 7]},
                         headers={"Authorization": f"Token {secret}"},
                         timeout=10).json()["errors"] == {
        "reports[1]": ['Expected a dictionary of items but got type "int".']}


def test_a_batch_reaches_a_watching_page_through_redis(server_factory, redis_url):
    import requests
    import websocket

    server = server_factory(REDIS_URL=redis_url, DASHBOARDS_PUBLIC="True",
                            TM_ALLOW_ANONYMOUS_MACHINES="True",
                            REDIS_PREFIX=f"tm-batch-test-{uuid.uuid4().hex[:8]}")
    url = server.url + "/tm_api/batch/"
    assert requests.post(url, json={"machine_name": MACHINE, "reports": [dry_run()]},
                         timeout=10).status_code == 200
    machine = requests.get(server.url + "/tm_api/machines/", timeout=5).json()["results"][0]
    last = websocket.create_connection(f"{server.ws_url}/ws/machine/{machine['id']}/last/",
                                       timeout=10)
    try:
        reports = [start("a.py"), stop("a.py"), start("b.py"), stop("b.py", "failed"),
                   start("c.py")]
        assert requests.post(url, json={"machine_name": MACHINE, "reports": reports},
                             timeout=10).json()["applied"] == 5
        final = requests.get(f"{server.url}/tm_api/machine_last_data/{machine['id']}/",
                             timeout=5).json()["last_master_scenario"]
        while True:  # frames of the batch's changes, up to its final state
            master = json.loads(last.recv())["machine_data"]["last_master_scenario"]
            if master["tests_statistics"] == final["tests_statistics"]:
                break
        assert master["status"] == S.RUNNING
        assert [(t["file_name"], t["status"]) for t in master["scenarios"][0]["tests"]] == [
            ("a.py", S.PASSED), ("b.py", S.FAILED), ("c.py", S.RUNNING)]
    finally:
        last.close()


def test_a_lone_surrogate_is_refused_in_drf_s_words_and_any_other_text_is_kept(batch):
    """The surrogate check is the UTF-8 codec's (plumbing.rest_fields), DRF's own validator only
    wording the refusal: a lone surrogate in a test's source or in a failure's traceback is a
    400 naming it; text of any other script, emoji included, is stored as sent."""
    source = "def test_ünïcødé():\n    assert '日本' != '😀'\n"
    with_source = dry_run()
    with_source["master_scenario"]["scenarios"][0]["tests"][0]["script"] = source
    bad_source = dry_run()
    bad_source["master_scenario"]["scenarios"][0]["tests"][0]["script"] = "x\ud800y"
    for reports, field in (
            ([bad_source], "reports[0].master_scenario.scenarios[0].tests[0].script"),
            ([with_source, start("a.py"), stop("a.py", "failed", traceback="a\udfffb")],
             "reports[2].traceback")):
        response = batch(reports)  # json.dumps sends a lone surrogate as its \u escape
        assert response.status_code == 400, response.content
        assert response.json()["errors"][field] == [
            "Surrogate characters are not allowed: U+" + ("D800." if "script" in field
                                                          else "DFFF.")]
    assert not Run.objects.exists()
    response = batch([with_source, start("a.py"), stop("a.py", "failed", traceback="😀 ✗")])
    assert response.status_code == 200, response.json()
    test = Test.objects.get(file_name="a.py")
    assert test.script == source and test.result.traceback == "😀 ✗"

