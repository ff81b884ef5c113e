"""tm_api/results.py: GET /api/runs/<run>/tests/ and /api/runs/<run>/tests/<test>/: a run's
tests with their results, filters, pagination, details, access, the schema."""

import pytest

from tm_api.models import Run, Test
from tm_api.tests.conftest import dry_run_payload, scenario

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def run(machines):
    machines.dry_run(dry_run_payload(scenarios=[
        scenario("s1.py", ("/t", "a.py"), ("/t", "b.py")),
        scenario("s2.py", ("/t", "c.py"), ("/t", "d.py"))]))
    machines.start(file_name="a.py", file_path="/t", timestamp_start="2024-05-01T10:00:00Z")
    machines.stop(file_name="a.py", file_path="/t", status="passed",
                  timestamp_stop="2024-05-01T10:00:01.5Z")
    machines.start(file_name="b.py", file_path="/t", timestamp_start="2024-05-01T10:00:02Z")
    assert machines.stop(
        file_name="b.py", file_path="/t", status="failed", outcome="failed", attempts=["failed", "failed"],
        message="assert 1 == 2", traceback="Traceback (most recent call last):\n  ...",
        stdout="printed", timestamp_stop="2024-05-01T10:00:04Z").status_code == 202
    machines.start(file_name="c.py", file_path="/t", timestamp_start="2024-05-01T10:00:05Z")
    machines.stop(file_name="c.py", file_path="/t", status="warning", outcome="skipped",
                  timestamp_stop="2024-05-01T10:00:05Z")
    return Run.objects.get()


def test_a_runs_tests_list_their_results_in_dry_run_order(reader, run):
    body = reader.get(f"/api/runs/{run.pk}/tests/").json()
    assert body["count"] == 4
    a, b, c, d = body["results"]
    s1 = {"pk": a["scenario"]["pk"], "file_name": "s1.py", "file_path": "/s"}
    assert a == {"pk": a["pk"], "position": 0, "file_path": "/t", "file_name": "a.py",
                 "scenario": s1, "status": "passed", "outcome": None, "attempts": [],
                 "timestamp_start": "2024-05-01T10:00:00Z",
                 "timestamp_stop": "2024-05-01T10:00:01.500000Z", "duration": 1.5,
                 "expected_duration": None, "message": ""}
    assert (b["status"], b["outcome"], b["attempts"], b["message"], b["duration"]) == (
        "failed", "failed", ["failed", "failed"], "assert 1 == 2", 2.0)
    assert "traceback" not in b and "stdout" not in b  # details only
    assert (c["status"], c["outcome"], c["scenario"]["file_name"]) == ("warning", "skipped",
                                                                      "s2.py")
    assert (d["status"], d["outcome"], d["duration"]) == ("waiting", None, None)


def test_filters_and_pages(reader, run):
    def names(query):
        body = reader.get(f"/api/runs/{run.pk}/tests/{query}").json()
        return [test["file_name"] for test in body["results"]]

    assert names("?status=failed") == ["b.py"]
    assert names("?outcome=skipped") == ["c.py"]
    assert names("?status=waiting&outcome=failed") == []
    assert names("?page_size=2&page=2") == ["c.py", "d.py"]
    response = reader.get(f"/api/runs/{run.pk}/tests/?status=green")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and "status" in response.json()["errors"]


def test_one_tests_details_carry_its_traceback_and_output(reader, run):
    test = Test.objects.get(file_name="b.py")
    body = reader.get(f"/api/runs/{run.pk}/tests/{test.pk}/").json()
    assert body["run"] == run.pk and body["machine_name"] == "machine #1"
    assert body["traceback"] == "Traceback (most recent call last):\n  ..."
    assert (body["stdout"], body["stderr"], body["log"]) == ("printed", "", "")
    assert body["attempts"] == ["failed", "failed"]
    plain = Test.objects.get(file_name="a.py")
    assert reader.get(f"/api/runs/{run.pk}/tests/{plain.pk}/").json()["traceback"] == ""


def test_unknown_runs_and_tests_of_other_runs_are_404(reader, run, machines):
    assert reader.get("/api/runs/999999/tests/").json()["code"] == "not_found"
    machines.dry_run(dry_run_payload(name="other"))
    other = Test.objects.filter(machine__machine_name="other").first()
    response = reader.get(f"/api/runs/{run.pk}/tests/{other.pk}/")
    assert response.status_code == 404
    assert response.json() == {"detail": f"No test {other.pk} in run {run.pk}.",
                               "code": "not_found"}


def test_the_expected_duration_comes_from_the_history(reader, run, machines):
    machines.dry_run(dry_run_payload(scenarios=[scenario("s1.py", ("/t", "a.py"))]))
    newer = Run.objects.order_by("-pk").first()
    [test] = reader.get(f"/api/runs/{newer.pk}/tests/").json()["results"]
    assert test["expected_duration"] == 1.5


def test_reads_need_a_login_unless_dashboards_are_public(client, run, settings,
                                                         django_user_model):
    settings.DASHBOARDS_PUBLIC = False
    test = Test.objects.first()
    for path in (f"/api/runs/{run.pk}/tests/", f"/api/runs/{run.pk}/tests/{test.pk}/"):
        assert client.get(path).status_code == 403
    client.force_login(django_user_model.objects.create_user("ada", password="x"))
    for path in (f"/api/runs/{run.pk}/tests/", f"/api/runs/{run.pk}/tests/{test.pk}/"):
        assert client.get(path).status_code == 200


def test_the_schema_describes_both(client):
    schema = client.get("/api/schema/?format=json").json()
    listing = schema["paths"]["/api/runs/{run}/tests/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"run", "status", "outcome", "page",
                                                          "page_size"}
    detail = schema["paths"]["/api/runs/{run}/tests/{id}/"]["get"]
    assert {"200", "404"} <= set(detail["responses"])
    fields = schema["components"]["schemas"]["RunTestDetail"]["properties"]
    assert {"outcome", "attempts", "message", "traceback", "expected_duration"} <= set(fields)
