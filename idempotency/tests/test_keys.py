"""Idempotency-Key on the writes a client may retry: tm_api's dry run, test start and stop, and
tracking batches. A retry with the same key gets the first answer, and nothing is stored twice."""

import json

import pytest

from idempotency import fingerprint, legacy_fingerprint
from idempotency.models import IdempotentRequest
from tm_api import status as S
from tm_api.models import Run, Test
from tm_api.tests import conftest as tm
from tracking.models import Project, RequestMetric
from tracking.tests.conftest import batch_event, gzip_json

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def key(value):
    return {"HTTP_IDEMPOTENCY_KEY": value}


def start(machines, idempotency_key=None):
    headers = key(idempotency_key) if idempotency_key else {}
    return machines.post("/tm_api/test_start/", tm.SEED_TEST_START, **headers)


def stop(machines, idempotency_key=None):
    headers = key(idempotency_key) if idempotency_key else {}
    return machines.post("/tm_api/test_stop/", tm.SEED_TEST_STOP, **headers)


def test_a_repeated_dry_run_is_answered_again_and_stored_once(machines):
    first = machines.dry_run(tm.SEED_DRY_RUN, **key("run-1"))
    again = machines.dry_run(tm.SEED_DRY_RUN, **key("run-1"))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Run.objects.count() == 1
    machines.dry_run(tm.SEED_DRY_RUN, **key("run-2"))  # another key: another run
    machines.dry_run(tm.SEED_DRY_RUN)  # no key: as the seed, every post is a run
    assert Run.objects.count() == 3


# The same file twice in a run: a start applied twice would start the second one.
LAMP = (tm.LAMP_1["file_path"], tm.LAMP_1["file_name"])
TWICE = tm.dry_run_payload(scenarios=[tm.scenario("s.py", LAMP, LAMP)])


def test_a_repeated_start_and_stop_do_not_move_on_to_the_next_test(machines):
    machines.dry_run(TWICE)
    answers = [start(machines, "start-1") for _ in range(3)]
    assert {a.status_code for a in answers} == {202}
    assert answers[1].json() == answers[0].json()
    assert Test.objects.filter(status=S.RUNNING).count() == 1
    answers = [stop(machines, "stop-1") for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202]
    assert list(Test.objects.order_by("position").values_list("status", flat=True)) == [
        S.PASSED, S.WAITING]
    # Without a key a retry is what existing machines did: there is no running test any more.
    assert stop(machines).status_code == 409


def test_keys_belong_to_one_machine(machines):
    machines.dry_run(tm.SEED_DRY_RUN, **key("same"))
    other = machines.dry_run({**tm.SEED_DRY_RUN, "machine_name": "machine #2"}, **key("same"))
    assert other.status_code == 201 and "Idempotent-Replayed" not in other
    assert Run.objects.count() == 2


def test_an_error_is_not_remembered_the_retry_runs_again(machines):
    machines.dry_run(TWICE)
    assert stop(machines, "early").status_code == 409  # not started yet
    assert not IdempotentRequest.objects.exists()
    assert start(machines).status_code == 202
    assert stop(machines, "early").status_code == 202


@pytest.mark.parametrize("bad", ["", "x" * 65, "é", "tab\there"])
def test_a_malformed_key_is_a_400_naming_the_header(machines, bad):
    response = machines.dry_run(tm.SEED_DRY_RUN, HTTP_IDEMPOTENCY_KEY=bad.encode().decode("latin-1"))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "Idempotency-Key" in body["errors"], body
    assert Run.objects.count() == 0


def test_a_repeated_tracking_batch_is_counted_once(client):
    project, token = Project.create_with_token("Shop")
    body = gzip_json({"events": [batch_event(), batch_event(path="/b/"), {"bad": 1}]})

    def post(idempotency_key):
        return client.post("/api/tracking/ingest/", body, content_type="application/json",
                           HTTP_CONTENT_ENCODING="gzip", HTTP_AUTHORIZATION=f"Bearer {token}",
                           HTTP_IDEMPOTENCY_KEY=idempotency_key)

    first, again = post("batch-1"), post("batch-1")
    assert first.status_code == again.status_code == 200
    assert json.loads(again.content) == json.loads(first.content)
    assert first.json()["accepted"] == 2 and again["Idempotent-Replayed"] == "true"
    assert RequestMetric.objects.count() == 2
    other_project, other_token = Project.create_with_token("Other")
    assert client.post("/api/tracking/ingest/", body, content_type="application/json",
                       HTTP_CONTENT_ENCODING="gzip", HTTP_AUTHORIZATION=f"Bearer {other_token}",
                       HTTP_IDEMPOTENCY_KEY="batch-1").json()["accepted"] == 2
    assert RequestMetric.objects.count() == 4


def test_a_key_used_on_another_endpoint_is_422_and_applies_nothing(machines):
    machines.dry_run(TWICE, **key("k"))
    response = start(machines, "k")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "idempotency_key_reused" and "/tm_api/dry_run/" in body["detail"]
    assert "Idempotent-Replayed" not in response
    assert not Test.objects.filter(status=S.RUNNING).exists()
    assert start(machines, "k2").status_code == 202  # a new key: applied


def test_a_key_repeated_with_another_body_is_422_and_keeps_the_first_write(machines):
    first = machines.dry_run(tm.dry_run_payload(scenarios=[tm.scenario("first.py", ("/s/t", "a.py"))]),
                             **key("dry"))
    assert first.status_code == 201
    response = machines.dry_run(
        tm.dry_run_payload(scenarios=[tm.scenario("SECOND.py", ("/s/t", "a.py"))]), **key("dry"))
    assert response.status_code == 422 and "another body" in response.json()["detail"]
    assert Run.objects.count() == 1
    machines.post("/tm_api/test_start/", {"machine_name": "machine #1", "file_path": "/s/t",
                                          "file_name": "a.py"})
    stop_body = {"machine_name": "machine #1", "file_path": "/s/t", "file_name": "a.py"}
    assert machines.post("/tm_api/test_stop/", {**stop_body, "status": "failed"},
                         **key("stop")).status_code == 202
    retried = machines.post("/tm_api/test_stop/", {**stop_body, "status": "passed"}, **key("stop"))
    assert retried.status_code == 422
    assert Test.objects.get().status == S.FAILED
    # The same body with its keys in another order is the same body: replayed.
    reordered = dict(reversed(list({**stop_body, "status": "failed"}.items())))
    replayed = machines.post("/tm_api/test_stop/", reordered, **key("stop"))
    assert replayed.status_code == 202 and replayed["Idempotent-Replayed"] == "true"


def test_a_key_stored_before_orjson_fingerprints_still_replays_its_retry(machines):
    """A key stored by the server before fingerprints were orjson's holds the standard
    library's: the retry of that body, sent across the upgrade, is answered again, and another
    body is still refused."""
    payload = tm.dry_run_payload(scenarios=[tm.scenario("ünï.py", ("/s/t", "a.py"))])
    parsed = json.loads(json.dumps(payload))  # as the server parsed it
    assert fingerprint(parsed) != legacy_fingerprint(parsed)  # else this proves nothing
    first = machines.dry_run(payload, **key("before"))
    IdempotentRequest.objects.filter(key="before").update(fingerprint=legacy_fingerprint(parsed))
    again = machines.dry_run(payload, **key("before"))
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() and Run.objects.count() == 1
    other = tm.dry_run_payload(scenarios=[tm.scenario("other.py", ("/s/t", "a.py"))])
    assert machines.dry_run(other, **key("before")).status_code == 422


def test_a_body_orjson_refuses_is_fingerprinted_by_the_standard_library():
    for body in ({"text": "lone \ud800"}, {"count": 2**70}):
        assert fingerprint(body) == legacy_fingerprint(body)
    assert fingerprint({"b": 1, "a": [1, 2]}) == fingerprint({"a": [1, 2], "b": 1})


def test_a_second_tracking_batch_with_a_used_key_is_422_not_silently_dropped(client):
    project, token = Project.create_with_token("Shop")

    def post(events):
        return client.post("/api/tracking/ingest/", gzip_json({"events": events}),
                           content_type="application/json", HTTP_CONTENT_ENCODING="gzip",
                           HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_IDEMPOTENCY_KEY="batch")

    assert post([batch_event()]).json()["accepted"] == 1
    response = post([batch_event(path="/other/")])
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert RequestMetric.objects.count() == 1
