"""Tests across runs through the API: a test's history, flaky tests, two runs compared and
quarantines (docs/tm.md, "Tests across runs"); every endpoint's refusals."""

import json

import pytest

from tm_api import history
from tm_api.models import Quarantine, Run, Test
from tm_api.tests.conftest import dry_run_payload, scenario

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

LOGIN = ("tests/test_api.py", "test_login")
LOGOUT = ("tests/test_api.py", "test_logout")
SEED = ("/vtm/tests", "01_test.py")  # a machine that reports script files, status only


def run_of(machines, outcomes: dict, machine="rack", commit="", branch="main", minute=0,
           **stop_fields):
    """A whole run: a dry run of `outcomes`' tests, then a start and a stop with each status."""
    payload = dry_run_payload(machine, timestamp=f"2026-01-01 10:{minute:02d}:00",
                              scenarios=[scenario("suite.py", *outcomes)])
    payload.update(commit=commit, branch=branch)
    assert machines.dry_run(payload).status_code == 201
    for (path, name), status in outcomes.items():
        assert machines.start(machine, path, name,
                              timestamp_start=f"2026-01-01 10:{minute:02d}:01").status_code == 202
        extra = stop_fields.get(name, {})
        assert machines.stop(machine, path, name, status=status,
                             timestamp_stop=f"2026-01-01 10:{minute:02d}:0{3 if status == 'passed' else 5}",
                             **extra).status_code == 202
    return Run.objects.order_by("-pk").first()


@pytest.fixture
def flipping(machines):
    """Four runs: test_login passes and fails on one commit; the seed client's script flips
    three times; test_logout always fails (broken)."""
    runs = []
    for minute, (login, seed, commit) in enumerate(
            [("passed", "passed", "c1"), ("failed", "failed", "c1"), ("passed", "passed", "c2"),
             ("passed", "failed", "c3")]):
        runs.append(run_of(machines, {LOGIN: login, LOGOUT: "failed", SEED: seed},
                           commit=commit, minute=minute,
                           test_login={"outcome": login, "message": "wrong user"
                                       if login == "failed" else ""}))
    return runs


def get(client, path, **query):
    return client.get(path, query)


# --- history ---------------------------------------------------------------------------------

def test_history_by_identity_newest_first_with_pass_rate(reader, flipping):
    response = get(reader, "/api/tests/history/", name="tests/test_api.py::test_login")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["identity"] == "tests/test_api.py::test_login"
    assert (body["runs"], body["passed"], body["failed"]) == (4, 3, 1)
    assert body["pass_rate"] == pytest.approx(0.75)
    assert [r["run"] for r in body["results"]] == [r.pk for r in reversed(flipping)]
    failed = body["results"][2]
    assert (failed["outcome"], failed["message"], failed["commit"], failed["branch"]) == (
        "failed", "wrong user", "c1", "main")
    assert failed["duration"] == pytest.approx(4.0) and failed["machine_name"] == "rack"
    assert body["quarantine"] is None


def test_history_of_a_seed_client_test_without_results(reader, flipping):
    # Only statuses were sent (no TestResult): the status is the outcome.
    body = get(reader, "/api/tests/history/", name="/vtm/tests/01_test.py").json()
    assert [r["outcome"] for r in body["results"]] == ["failed", "passed", "failed", "passed"]
    assert [r["message"] for r in body["results"]] == [""] * 4
    # Its name alone finds it too (no other test has that name).
    by_name = get(reader, "/api/tests/history/", name="01_test.py").json()
    assert by_name["results"] == body["results"]


def test_history_filters_limit_and_test_pk(reader, flipping, machines):
    run_of(machines, {LOGIN: "passed"}, machine="other", branch="dev", minute=30)
    assert get(reader, "/api/tests/history/", name="test_login").json()["runs"] == 5
    assert get(reader, "/api/tests/history/", name="test_login", branch="dev").json()["runs"] == 1
    assert get(reader, "/api/tests/history/", name="test_login",
               machine="RACK").json()["runs"] == 4
    assert len(get(reader, "/api/tests/history/", name="test_login",
                   limit=2).json()["results"]) == 2
    test = Test.objects.filter(file_name="test_login").first()
    assert get(reader, "/api/tests/history/", test=test.pk).json()["runs"] == 5


def test_history_leaves_out_tests_without_a_verdict(reader, machines):
    payload = dry_run_payload("rack", scenarios=[scenario("suite.py", LOGIN, LOGOUT)])
    machines.dry_run(payload)
    machines.start("rack", *LOGIN)
    machines.stop("rack", *LOGIN, status="passed")
    machines.start("rack", *LOGOUT)  # still running
    body = get(reader, "/api/tests/history/", name="tests/test_api.py::test_logout").json()
    assert body["runs"] == 0 and body["pass_rate"] is None


@pytest.mark.parametrize(("query", "status", "detail"), [
    ({}, 400, "name: Say which test: ?name=<its identity or name> or ?test=<a test pk>."),
    ({"name": ""}, 400, "name: Say which test"),
    ({"name": "test_login", "limit": "0"}, 400, "limit: Ensure this value is greater than"),
    ({"name": "test_login", "limit": "501"}, 400, "limit: Ensure this value is less than"),
    ({"name": "test_login", "limit": "many"}, 400, "limit: A valid integer is required."),
    ({"test": "x"}, 400, "test: A valid integer is required."),
    ({"test": "999999"}, 404, "No test 999999."),
    ({"test": str(2**70)}, 400, "test: Ensure this value is less than or equal to"),
    ({"name": "tests/nope.py::test_nothing"}, 404, "No test is called 'tests/nope.py::test_nothing'"),
])
def test_history_refuses_bad_queries_clearly(reader, flipping, query, status, detail):
    response = get(reader, "/api/tests/history/", **query)
    assert response.status_code == status, response.content
    assert response.json()["detail"].startswith(detail)


def test_a_name_several_tests_have_is_ambiguous(reader, machines):
    run_of(machines, {("tests/a.py", "test_same"): "passed", ("tests/b.py", "test_same"): "passed"})
    response = get(reader, "/api/tests/history/", name="test_same")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("name: 2 tests are named 'test_same': give the full identity")
    assert "tests/a.py::test_same" in detail and "tests/b.py::test_same" in detail
    assert get(reader, "/api/tests/history/", name="tests/b.py::test_same").status_code == 200


def test_reads_need_a_login_unless_dashboards_are_public(client, settings, flipping):
    settings.DASHBOARDS_PUBLIC = False
    for path in ("/api/tests/history/?name=test_login", "/api/tests/flaky/",
                 f"/api/runs/compare/?head={flipping[-1].pk}", "/api/tests/quarantine/"):
        assert client.get(path).status_code == 403, path


# --- flaky tests -----------------------------------------------------------------------------

def test_flaky_tests_by_commit_and_by_flips_not_the_broken_one(reader, flipping, settings):
    settings.TM_FLAKY_FLIPS = 3
    body = get(reader, "/api/tests/flaky/").json()
    assert body["window"] == {"days": 30, "runs": 20, "min_flips": 3}
    tests = {t["identity"]: t for t in body["tests"]}
    assert set(tests) == {"tests/test_api.py::test_login", "/vtm/tests/01_test.py"}
    login = tests["tests/test_api.py::test_login"]
    assert login["reasons"] == ["passed and failed on commit c1"]
    assert (login["passes"], login["failures"], login["commit"], login["flips"]) == (3, 1, "c1", 2)
    assert login["last_run"] == flipping[-1].pk and login["last_status"] == "passed"
    seed = tests["/vtm/tests/01_test.py"]
    assert seed["reasons"] == ["passed and failed on commit c1",
                               "flipped 3 times in its last 20 results on branch main"]
    assert seed["flips"] == 3 and seed["quarantine"] is None
    settings.TM_FLAKY_FLIPS = 4
    tests = {t["identity"]: t for t in get(reader, "/api/tests/flaky/").json()["tests"]}
    assert tests["/vtm/tests/01_test.py"]["reasons"] == ["passed and failed on commit c1"]


def test_runs_older_than_the_window_are_not_looked_at(reader, flipping, settings):
    from datetime import timedelta

    from django.utils import timezone

    Run.objects.update(received=timezone.now() - timedelta(days=31))
    assert get(reader, "/api/tests/flaky/").json()["count"] == 0
    settings.TM_FLAKY_DAYS = 40
    assert get(reader, "/api/tests/flaky/").json()["count"] == 2


def test_a_retry_that_passed_is_flaky(reader, machines):
    run_of(machines, {LOGIN: "passed"}, test_login={"outcome": "passed",
                                                    "attempts": ["failed", "passed"]})
    [test] = get(reader, "/api/tests/flaky/").json()["tests"]
    assert test["reasons"][0].startswith("failed, then passed on a retry")


@pytest.mark.parametrize("listed", [5000, 0], ids=["identities listed", "identities subquery"])
def test_a_run_s_end_reads_the_window_results_of_its_identities_that_failed(
        machines, flipping, monkeypatch, listed, django_assert_num_queries):
    # The read at a run's end (new_flaky_test) is the window's results cut to the identities
    # of the run that failed there, with the run's identities listed or (a run larger than
    # MAX_LISTED_KEYS) as a subquery; a run none of whose identities failed reads no results.
    monkeypatch.setattr(history, "MAX_LISTED_KEYS", listed)
    since = history.window_start()
    every = history.window_results(since)
    other = run_of(machines, {("tests/test_other.py", "test_alone"): "passed"}, machine="bench",
                   minute=9)
    # Never failed, but passed on a retry: a suspect too (the UNION's second part).
    retried = run_of(machines, {("tests/test_retry.py", "test_again"): "passed"},
                     machine="retrier", minute=10,
                     test_again={"outcome": "passed", "attempts": ["failed", "passed"]})
    every = history.window_results(since)
    for run in [*flipping, other, retried]:
        identities = set(Test.objects.filter(master_scenario__run=run)
                         .values_list("identity_key", flat=True))
        assert history.window_results(since, run) == [
            result for result in every if result.key in identities]
    assert {result.key for result in every} >= {
        Test.objects.filter(file_name=name).values_list("identity_key", flat=True)[0]
        for name in ("test_login", "test_logout", "01_test.py", "test_again")}
    with django_assert_num_queries(2):  # its identities; none failed (or, too many, the rows)
        assert history.window_results(since, other) == []


def test_flaky_query_reads_a_bounded_slice(reader, flipping, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):  # the session, the results, the quarantines
        assert get(reader, "/api/tests/flaky/").status_code == 200


# --- comparing runs --------------------------------------------------------------------------

def test_compare_with_the_previous_run_of_the_machine(reader, flipping):
    head = flipping[-1]
    body = get(reader, "/api/runs/compare/", head=head.pk).json()
    assert body["base"]["run"] == flipping[-2].pk and body["head"]["run"] == head.pk
    assert body["counts"] == {"newly_failing": 1, "fixed": 0, "still_failing": 1, "new": 0,
                              "removed": 0, "duration_changes": 1}
    assert [p["identity"] for p in body["newly_failing"]] == ["/vtm/tests/01_test.py"]
    assert [p["identity"] for p in body["still_failing"]] == ["tests/test_api.py::test_logout"]
    [change] = body["duration_changes"]
    assert change["change"] == pytest.approx(2.0) and change["base"]["status"] == "passed"

    fixed = get(reader, "/api/runs/compare/", base=flipping[1].pk, head=flipping[2].pk).json()
    assert {p["identity"] for p in fixed["fixed"]} == {"tests/test_api.py::test_login",
                                                      "/vtm/tests/01_test.py"}


def test_compare_new_and_removed_tests_and_by_branch(reader, flipping, machines):
    other = run_of(machines, {LOGIN: "passed", ("tests/test_new.py", "test_it"): "failed"},
                   machine="other", branch="main", minute=40)
    body = get(reader, "/api/runs/compare/", head=other.pk, against="branch").json()
    assert body["base"]["run"] == flipping[-1].pk  # the branch's run before, another machine
    assert [p["identity"] for p in body["new"]] == ["tests/test_new.py::test_it"]
    assert body["new"][0]["base"] is None
    assert {p["identity"] for p in body["removed"]} == {"tests/test_api.py::test_logout",
                                                        "/vtm/tests/01_test.py"}


@pytest.mark.parametrize(("query", "status", "detail"), [
    ({}, 400, "head: This field is required."),
    ({"head": "abc"}, 400, "head: A valid integer is required."),
    ({"head": "{first}", "against": "team"}, 400, "against: \"team\" is not a valid choice."),
    ({"head": "999999"}, 404, "No run 999999 (head)."),
    ({"head": "{last}", "base": str(2**64)}, 400, "base: Ensure this value is less than"),
    ({"head": "{last}", "base": "999999"}, 404, "No run 999999 (base)."),
    ({"head": "{first}"}, 404, "Run {first} is the first run of machine 'rack': nothing to compare"),
    ({"head": "{nobranch}", "against": "branch"}, 400, "against: Run {nobranch} has no branch"),
])
def test_compare_refuses_bad_queries_clearly(reader, flipping, machines, query, status, detail):
    nobranch = run_of(machines, {LOGIN: "passed"}, machine="solo", branch="", minute=50)
    ids = {"first": flipping[0].pk, "last": flipping[-1].pk, "nobranch": nobranch.pk}
    response = get(reader, "/api/runs/compare/", **{k: v.format(**ids) for k, v in query.items()})
    assert response.status_code == status, response.content
    assert response.json()["detail"].startswith(detail.format(**ids))
    if "first run" in detail:
        assert response.json()["code"] == "no_previous_run"


# --- quarantine ------------------------------------------------------------------------------

def test_quarantine_set_shown_and_lifted_through_the_api(client, flipping, django_user_model,
                                                         settings):
    settings.DASHBOARDS_PUBLIC = True
    body = {"name": "tests/test_api.py::test_login", "reason": "issue 42"}
    assert client.post("/api/tests/quarantine/", body,
                       content_type="application/json").status_code == 403  # not logged in
    client.force_login(django_user_model.objects.create_user("ada", password="x"))
    response = client.post("/api/tests/quarantine/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["by"] == "ada" and response.json()["reason"] == "issue 42"
    again = client.post("/api/tests/quarantine/", {**body, "reason": "issue 43"},
                        content_type="application/json")
    assert again.status_code == 200 and Quarantine.objects.get().reason == "issue 43"

    history_body = get(client, "/api/tests/history/", name="test_login").json()
    assert history_body["quarantine"]["reason"] == "issue 43"
    flaky = {t["identity"]: t for t in get(client, "/api/tests/flaky/").json()["tests"]}
    assert flaky["tests/test_api.py::test_login"]["quarantine"]["by"] == "ada"
    listed = get(client, "/api/tests/quarantine/").json()
    assert listed["count"] == 1 and listed["tests"][0]["identity"] == body["name"]

    assert client.delete("/api/tests/quarantine/?name=test_login").status_code == 204
    gone = client.delete("/api/tests/quarantine/?name=test_login")
    assert gone.status_code == 404
    assert gone.json()["detail"] == "tests/test_api.py::test_login is not quarantined."
    unknown = client.post("/api/tests/quarantine/", {"name": "nope"},
                          content_type="application/json")
    assert unknown.status_code == 404
    assert client.post("/api/tests/quarantine/", {},
                       content_type="application/json").status_code == 400


def test_quarantine_writes_need_the_csrf_token(flipping, django_user_model):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_user("ada", password="x"))
    response = client.post("/api/tests/quarantine/", json.dumps({"name": "test_login"}),
                           content_type="application/json")
    assert response.status_code == 403 and not Quarantine.objects.exists()


def test_a_quarantined_test_is_marked_on_the_run_page_and_pages_render(
        admin_client, flipping, django_user_model):
    ada = django_user_model.objects.create_user("ada", password="x")
    history.quarantine(*history.resolve("test_login"), "issue 42", ada)
    run = flipping[-1]
    page = admin_client.get(f"/machines/runs/{run.pk}/").content.decode()
    assert page.count('class="tm-quarantine"') == 1
    assert 'href="/machines/tests/history/?test=' in page
    assert f'href="/machines/compare/?head={run.pk}"' in page
    for path in ("/machines/tests/history/?name=test_login", "/machines/tests/flaky/",
                 f"/machines/compare/?base={flipping[1].pk}&head={flipping[2].pk}"):
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert "quarantined" in response.content.decode(), path
    assert admin_client.get("/machines/tests/history/?name=nope").status_code == 404
    assert admin_client.get("/machines/compare/?head=x").status_code == 400
    assert admin_client.get("/machines/tests/history/").status_code == 200  # the search form
