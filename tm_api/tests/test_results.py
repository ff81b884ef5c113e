"""A stop's optional outcome, attempts and failure details (docs/tm.md, "Outcomes and failure
details"): stored beside the test, shown on the run page, and nothing changes for machines that
send only a status."""

import pytest

from tm_api import outcomes as O
from tm_api import status as S
from tm_api.models import MasterScenario, Run, Test, TestResult
from tm_api.tests.conftest import dry_run_payload, scenario
from tm_reporter.pytest_plugin import bounded as plugin_bounded

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

TESTS = [("tests/test_api.py", "test_login"), ("tests/test_api.py", "test_logout"),
         ("tests/test_api.py", "test_skip")]

@pytest.fixture
def run(machines):
    payload = dry_run_payload("rack", scenarios=[scenario("test_api.py", *TESTS)])
    payload.update(commit="0123456789abcdef0123", branch="main",
                   build_url="https://ci.example.com/build/7")
    assert machines.dry_run(payload).status_code == 201
    return Run.objects.get()

def test_a_stop_with_only_a_status_writes_no_result(machines, run):
    machines.start("rack", *TESTS[0])
    assert machines.stop("rack", *TESTS[0], status="failed").status_code == 202
    assert not TestResult.objects.exists()

def test_a_failure_is_stored_with_its_details_and_the_reply_is_unchanged(machines, run):
    machines.start("rack", *TESTS[0])
    response = machines.stop("rack", *TESTS[0], status="failed", outcome="failed",
                             message="AssertionError: wrong user returned",
                             traceback="def test_login():\n>   assert user == 'ann'\nE   ...",
                             stdout="hello\n", stderr="", log="WARNING db slow")
    assert response.status_code == 202
    assert set(response.json()) == {"machine_name", "file_path", "file_name", "status",
                                    "timestamp_stop"}
    result = TestResult.objects.get()
    assert result.test.status == S.FAILED and result.outcome == "failed"
    assert result.attempts == ["failed"]
    assert result.message == "AssertionError: wrong user returned"
    assert result.stdout == "hello\n" and result.stderr == "" and result.log == "WARNING db slow"

def test_an_outcome_without_a_status_gives_the_documented_status(machines, run):
    for (path, name), outcome in zip(TESTS, ["xfailed", "xpassed", "skipped"]):
        machines.start("rack", path, name)
        body = {"machine_name": "rack", "file_path": path, "file_name": name,
                "outcome": outcome}
        assert machines.post("/tm_api/test_stop/", body).status_code == 202
    assert {t.file_name: (t.status, t.result.outcome) for t in Test.objects.all()} == {
        "test_login": ("passed", "xfailed"), "test_logout": ("warning", "xpassed"),
        "test_skip": ("warning", "skipped")}
    master = MasterScenario.objects.get()
    assert master.status == S.WARNING  # the roll-up of the statuses, as before

def test_neither_status_nor_outcome_is_a_400_naming_status(machines, run):
    machines.start("rack", *TESTS[0])
    response = machines.post("/tm_api/test_stop/", {
        "machine_name": "rack", "file_path": TESTS[0][0], "file_name": TESTS[0][1]})
    assert response.status_code == 400 and "status" in response.json()["errors"]
    response = machines.stop("rack", *TESTS[0], outcome="exploded")
    assert response.status_code == 400 and "outcome" in response.json()["errors"]

def test_long_details_are_cut_in_the_middle_with_a_mark(machines, run):
    machines.start("rack", *TESTS[0])
    text = "first line\n" + "x" * 200_000 + "\nlast line"
    assert machines.stop("rack", *TESTS[0], status="failed", stdout=text).status_code == 202
    stored = TestResult.objects.get().stdout
    assert len(stored) <= O.MAX_DETAIL
    assert stored.startswith("first line\n") and stored.endswith("\nlast line")
    assert "characters cut ...]" in stored

def test_a_batch_carries_results_and_retries_as_attempts(machines, run):
    path, name = TESTS[0]
    body = {"machine_name": "rack", "reports": [
        {"type": "test_start", "file_path": path, "file_name": name},
        {"type": "test_stop", "file_path": path, "file_name": name, "status": "passed",
         "outcome": "passed", "attempts": ["failed", "failed", "passed"],
         "message": "flaky: timeout"},
        {"type": "test_start", "file_path": TESTS[1][0], "file_name": TESTS[1][1]},
        {"type": "test_stop", "file_path": TESTS[1][0], "file_name": TESTS[1][1],
         "status": "error", "outcome": "error", "message": "db fixture exploded"},
    ]}
    response = machines.post("/tm_api/batch/", body)
    assert response.status_code == 200 and response.json()["refused"] == 0
    results = {r.test.file_name: r for r in TestResult.objects.select_related("test")}
    assert results["test_login"].attempts == ["failed", "failed", "passed"]
    assert O.is_flaky_attempts(results["test_login"].attempts)
    assert results["test_logout"].message == "db fixture exploded"
    assert results["test_logout"].test.status == S.ERROR

def test_the_run_keeps_its_ci_metadata(run):
    assert (run.commit, run.branch, run.build_url) == (
        "0123456789abcdef0123", "main", "https://ci.example.com/build/7")

def test_the_run_page_shows_the_failure_escaped_and_collapsed(machines, reader, run):
    machines.start("rack", *TESTS[0])
    machines.stop("rack", *TESTS[0], status="failed", outcome="failed",
                  message="wrong user returned <script>alert(1)</script>",
                  traceback="Traceback\n  File x\nAssertionError")
    machines.start("rack", *TESTS[2])
    machines.stop("rack", *TESTS[2], outcome="skipped")
    for query in ("", "?sort=status"):
        page = reader.get(f"/machines/runs/{run.pk}/{query}").content.decode()
        assert '<details class="tm-failure">' in page
        assert "wrong user returned &lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script>alert(1)" not in page
        assert '<pre class="tm-detail">Traceback\n  File x\nAssertionError</pre>' in page
        assert 'outcome-skipped' in page
        assert 'class="tm-branch">main<' in page and 'href="https://ci.example.com/build/7"' in page


def test_the_runs_api_carries_and_filters_by_ci_metadata(machines, reader, run):
    other = dry_run_payload("rack", timestamp="2018-12-31 10:00:00",
                            scenarios=[scenario("test_api.py", *TESTS)])
    other.update(commit="fedcba9876", branch="feature/x")
    machines.dry_run(other)
    machine = run.machine_id
    url = f"/tm_api/machine_dry_run_datas/{machine}"
    runs = reader.get(url).json()["results"]
    assert [(r["branch"], r["commit"], r["build_url"]) for r in runs] == [
        ("feature/x", "fedcba9876", ""),
        ("main", "0123456789abcdef0123", "https://ci.example.com/build/7")]
    assert [r["id"] for r in reader.get(url + "?branch=main").json()["results"]] == [run.pk]
    assert [r["branch"] for r in reader.get(url + "?commit=fedc").json()["results"]] == [
        "feature/x"]
    assert reader.get(url + "?commit=fe").status_code == 400
    page = reader.get(f"/machines/{machine}/").content.decode()
    assert '<small class="tm-ci">feature/x fedcba9876</small>' in page


def test_a_report_reads_no_more_rows_for_the_ci_fields(machines, run, django_assert_max_num_queries):
    # The run's CI fields come with the lock query: a stop's live frame needs them.
    machines.start("rack", *TESTS[0])
    from tm_api import services

    with django_assert_max_num_queries(6) as captured:
        services.stop_test("rack", *TESTS[0], "passed")
    assert not any("tm_api_run" in q["sql"] and "WHERE" in q["sql"] and "commit" in q["sql"]
                   and "tm_api_test" not in q["sql"] for q in captured.captured_queries)


@pytest.mark.parametrize("length", [0, 10, O.MAX_DETAIL, O.MAX_DETAIL + 1, 3 * O.MAX_DETAIL + 7])
def test_the_pytest_plugin_cuts_long_details_as_the_server_does(length):
    # The plugin cuts before sending (it cannot import the server); what it cut, the server
    # then keeps as it is.
    text = "".join(chr(ord("a") + i % 26) for i in range(length))
    assert plugin_bounded(text) == O.bounded(text)
    assert O.bounded(plugin_bounded(text)) == plugin_bounded(text)
    assert len(plugin_bounded(text)) <= O.MAX_DETAIL
