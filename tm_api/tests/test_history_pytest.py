"""Real pytest sessions feed history and flaky tests: a generated suite whose one test flips
between two sessions on the same commit, reported by the pytest plugin, and the same suite's
--junitxml reports imported (docs/tm.md, "Tests across runs")."""

import subprocess
import sys

import pytest
import requests

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration

RUN = ["-p", "no:django", "-p", "no:cacheprovider", "-p", "no:randomly"]
SUITE = '''
import os

def test_steady():
    assert True

def test_flips():
    assert os.environ["FLIP"] == "pass", "flipped to fail"

def test_broken():
    assert 1 == 2, "broken for good"
'''


@pytest.fixture(autouse=True)
def no_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("TM_SPOOL_DIR", str(tmp_path / "spool"))
    for name in ("GITHUB_SHA", "GITHUB_REF_NAME", "CI_COMMIT_SHA", "GIT_COMMIT", "GIT_BRANCH",
                 "BUILDKITE_COMMIT", "CIRCLE_SHA1", "CI_COMMIT_REF_NAME", "BUILDKITE_BRANCH",
                 "CIRCLE_BRANCH", "TM_COMMIT", "TM_BRANCH"):
        monkeypatch.delenv(name, raising=False)


def test_two_plugin_sessions_make_a_history_and_a_flaky_test(pytester, server_factory,
                                                             monkeypatch):
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True")
    pytester.makepyfile(test_suite=SUITE)
    for flip in ("pass", "fail"):
        monkeypatch.setenv("FLIP", flip)
        result = pytester.runpytest_subprocess(
            *RUN, "--tm-url", server.url, "--tm-machine", "ci-1", "--tm-commit", "4b825dc6",
            "--tm-branch", "main")
        result.assert_outcomes(passed=2 if flip == "pass" else 1,
                               failed=1 if flip == "pass" else 2)

    api = requests.Session()
    body = api.get(f"{server.url}/api/tests/history/",
                   params={"name": "test_suite.py::test_flips"}, timeout=10).json()
    assert [(r["outcome"], r["commit"], r["branch"]) for r in body["results"]] == [
        ("failed", "4b825dc6", "main"), ("passed", "4b825dc6", "main")]
    assert "flipped to fail" in body["results"][0]["message"]
    assert body["pass_rate"] == 0.5 and body["results"][0]["run"] > body["results"][1]["run"]

    flaky = api.get(f"{server.url}/api/tests/flaky/", timeout=10).json()
    assert [t["identity"] for t in flaky["tests"]] == ["test_suite.py::test_flips"]
    assert flaky["tests"][0]["reasons"] == ["passed and failed on commit 4b825dc6"]

    head = body["results"][0]["run"]
    compared = api.get(f"{server.url}/api/runs/compare/", params={"head": head}, timeout=10).json()
    assert [p["identity"] for p in compared["newly_failing"]] == ["test_suite.py::test_flips"]
    assert [p["identity"] for p in compared["still_failing"]] == ["test_suite.py::test_broken"]


def test_junitxml_reports_of_two_sessions_make_the_same_history(tmp_path, server_factory):
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True")
    (tmp_path / "test_suite.py").write_text(SUITE)
    for n, flip in enumerate(("fail", "pass", "fail")):
        report = tmp_path / f"report-{n}.xml"
        subprocess.run([sys.executable, "-m", "pytest", *RUN, f"--junitxml={report}", "-q",
                        "test_suite.py"], cwd=tmp_path, env={"FLIP": flip, "PATH": "/usr/bin"},
                       capture_output=True, timeout=120, check=False)
        response = requests.post(
            f"{server.url}/tm_api/junit/?machine=ci-junit&branch=main&commit=c{n}",
            data=report.read_bytes(), headers={"Content-Type": "application/xml"}, timeout=30)
        assert response.status_code == 201, response.text

    # pytest's report names the test by classname and name.
    body = requests.get(f"{server.url}/api/tests/history/",
                        params={"name": "test_suite::test_flips"}, timeout=10).json()
    assert [r["outcome"] for r in body["results"]] == ["failed", "passed", "failed"]
    assert [r["commit"] for r in body["results"]] == ["c2", "c1", "c0"]
    # Three commits, two flips: flaky only from two flips on.
    flaky = requests.get(f"{server.url}/api/tests/flaky/", timeout=10).json()
    assert flaky["count"] == 0
    server2 = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True",
                             TM_FLAKY_FLIPS="2")
    flaky = requests.get(f"{server2.url}/api/tests/flaky/", timeout=10).json()
    assert [t["identity"] for t in flaky["tests"]] == ["test_suite::test_flips"]
    assert flaky["tests"][0]["reasons"] == [
        "flipped 2 times in its last 20 results on branch main"]
