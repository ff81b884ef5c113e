"""The pytest plugin's outcomes, failure details, retries, xdist workers and CI metadata,
against a live server (pytester runs a real pytest session in a subprocess)."""

import re
from pathlib import Path

import pytest
import requests

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration

RUN = ["-p", "no:django", "-p", "no:cacheprovider", "-p", "no:randomly"]

# Every outcome, captured output, a retry (pytest-rerunfailures) and a property.
SUITE = (Path(__file__).parents[3] / "tm_api" / "tests" / "fixtures" / "pytest_suite.py").read_text()


OUTCOMES = {"passed": 4, "failed": 1, "errors": 1, "skipped": 1, "xfailed": 1, "xpassed": 1,
            "rerun": 1}


@pytest.fixture(autouse=True)
def spool_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TM_SPOOL_DIR", str(tmp_path / "spool"))
    for name in ("GITHUB_SHA", "GITHUB_REF_NAME", "CI_COMMIT_SHA", "GIT_COMMIT",
                 "BUILDKITE_COMMIT", "CIRCLE_SHA1", "CI_COMMIT_REF_NAME", "GIT_BRANCH",
                 "BUILDKITE_BRANCH", "CIRCLE_BRANCH"):
        monkeypatch.delenv(name, raising=False)


def results_of(machine_name):
    from tm_api.models import Run, Test

    run = Run.objects.filter(machine__machine_name=machine_name).order_by("-pk").first()
    tests = Test.objects.filter(master_scenario__run=run).select_related("result")
    return run, {t.file_name: (t.status, getattr(t, "result", None)) for t in tests}


def test_outcomes_details_retries_and_ci_metadata_reach_the_server(pytester, server_factory,
                                                                  monkeypatch):
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True")
    monkeypatch.setenv("GITHUB_SHA", "4b825dc642cb6eb9a060e54bf8d69288fbee4904")
    monkeypatch.setenv("GITHUB_REF_NAME", "feature/x")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/shop")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(*RUN, "--tm-url", server.url, "--tm-machine", "ci-1")
    assert result.parseoutcomes() == OUTCOMES
    run, tests = results_of("ci-1")
    # The run's address, at the start (before the first test) and at the end.
    address = f"tm-reporter: run {server.url}/machines/runs/{run.pk}/"
    lines = result.stdout.lines
    assert lines.count(address) == 2
    assert lines.index(address) < next(n for n, line in enumerate(lines)
                                       if line.startswith("test_suite.py"))
    assert (run.commit, run.branch, run.build_url) == (
        "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "feature/x",
        "https://github.example/acme/shop/actions/runs/42")

    # The statuses are those the plugin always sent; the outcomes are pytest's.
    assert {name: (status, r.outcome if r else None) for name, (status, r) in tests.items()} == {
        "test_ok": ("passed", "passed"), "test_broken": ("failed", "failed"),
        "test_setup_error": ("error", "error"), "test_skipped": ("warning", "skipped"),
        "test_known_bug": ("passed", "xfailed"), "test_fixed_meanwhile": ("failed", "xpassed"),
        "test_flaky": ("passed", "passed"), "TestGroup::test_param[1]": ("passed", "passed"),
        "TestGroup::test_param[2]": ("passed", "passed"),
    }
    broken = tests["test_broken"][1]
    assert "wrong user returned" in broken.message
    assert "assert 'ann' == 'bob'" in broken.traceback
    assert broken.stdout == "hello from stdout\n" and broken.stderr == "to stderr\n"
    assert "db slow" in broken.log
    error = tests["test_setup_error"][1]
    assert "db fixture exploded" in error.message and "RuntimeError" in error.traceback
    assert tests["test_skipped"][1].message == "Skipped: later"
    assert "known bug" in tests["test_known_bug"][1].message
    ok = tests["test_ok"][1]
    assert ok.message == "" and ok.stdout == ""  # a pass carries no details
    flaky = tests["test_flaky"][1]
    assert flaky.attempts == ["failed", "passed"] and "flaked" in flaky.message

    page = requests.get(f"{server.url}/machines/runs/{run.pk}/", timeout=5).text
    assert "wrong user returned" in page and "db fixture exploded" in page


def test_xdist_workers_report_into_one_run(pytester, server_factory):
    pytest.importorskip("xdist")
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(*RUN, "-n", "2", "--tm-url", server.url,
                                           "--tm-machine", "xdist")
    assert result.parseoutcomes() == OUTCOMES
    from tm_api.models import Run

    assert Run.objects.filter(machine__machine_name="xdist").count() == 1
    run, tests = results_of("xdist")
    assert run.master_scenario.tests_statistics["waiting"] == 0
    assert len(tests) == 9 and all(status not in ("waiting", "running", "unknown")
                                   for status, _ in tests.values())
    assert "wrong user returned" in tests["test_broken"][1].message
    assert tests["test_flaky"][1].attempts == ["failed", "passed"]
    assert re.search(rf"tm-reporter: run {re.escape(server.url)}/machines/runs/{run.pk}/",
                     result.stdout.str())
