"""`tm-reporter junit FILE... --machine NAME` against a live server, with a real pytest
session's --junitxml report and a Surefire report, and the CI variables it reads."""

import subprocess
import sys
from pathlib import Path

import pytest

from tm_reporter.ci import ci_metadata

pytest_plugins = ["pytester"]

SUREFIRE = Path(__file__).parents[3] / "tm_api" / "tests" / "fixtures" / \
    "TEST-com.acme.shop.CartServiceTest.xml"

SUITE = (SUREFIRE.parent / "pytest_suite.py").read_text()

CI_VARIABLES = ["GITHUB_SHA", "GITHUB_REF_NAME", "GITHUB_SERVER_URL", "GITHUB_REPOSITORY",
                "GITHUB_RUN_ID", "CI_COMMIT_SHA", "CI_COMMIT_REF_NAME", "CI_JOB_URL",
                "GIT_COMMIT", "GIT_BRANCH", "BUILD_URL", "BUILDKITE_COMMIT", "BUILDKITE_BRANCH",
                "BUILDKITE_BUILD_URL", "CIRCLE_SHA1", "CIRCLE_BRANCH", "CIRCLE_BUILD_URL",
                "TM_COMMIT", "TM_BRANCH", "TM_BUILD_URL", "TM_URL", "TM_TOKEN"]


@pytest.mark.unit
@pytest.mark.parametrize(("env", "expected"), [
    ({"GITHUB_SHA": "a1", "GITHUB_REF_NAME": "main", "GITHUB_SERVER_URL": "https://github.com",
      "GITHUB_REPOSITORY": "acme/shop", "GITHUB_RUN_ID": "9"},
     ("a1", "main", "https://github.com/acme/shop/actions/runs/9")),
    ({"CI_COMMIT_SHA": "b2", "CI_COMMIT_REF_NAME": "dev", "CI_JOB_URL": "https://gl/j/1"},
     ("b2", "dev", "https://gl/j/1")),
    ({"GIT_COMMIT": "c3", "GIT_BRANCH": "origin/release", "BUILD_URL": "https://jenkins/7/"},
     ("c3", "release", "https://jenkins/7/")),
    ({"BUILDKITE_COMMIT": "d4", "BUILDKITE_BRANCH": "bk", "BUILDKITE_BUILD_URL": "https://bk/1"},
     ("d4", "bk", "https://bk/1")),
    ({"CIRCLE_SHA1": "e5", "CIRCLE_BRANCH": "cc", "CIRCLE_BUILD_URL": "https://circle/5"},
     ("e5", "cc", "https://circle/5")),
    ({}, ("", "", "")),
])
def test_ci_metadata_from_each_ci(env, expected):
    assert tuple(ci_metadata(env).values()) == expected


@pytest.mark.unit
def test_given_values_win_over_the_ci():
    env = {"GITHUB_SHA": "a1", "GITHUB_REF_NAME": "main"}
    assert ci_metadata(env, commit="zz", branch="") == {"commit": "zz", "branch": "",
                                                         "build_url": ""}


def command(*args, env=None):
    """The installed console script (beside this interpreter, as pip puts it)."""
    script = Path(sys.executable).parent / "tm-reporter"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120,
                          env=env)


@pytest.mark.integration
def test_the_command_imports_pytest_and_surefire_reports_as_one_run(
        pytester, server_factory, tmp_path):
    from tm_api.auth import issue_token
    from tm_api.models import Run, TestResult

    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="False", DASHBOARDS_PUBLIC="True")
    _, token = issue_token("ci")
    pytester.makepyfile(test_suite=SUITE)
    report = tmp_path / "pytest.xml"
    session = pytester.runpytest_subprocess("-p", "no:django", "-p", "no:cacheprovider",
                                            f"--junitxml={report}")
    session.assert_outcomes(passed=4, failed=1, errors=1, skipped=1, xfailed=1, xpassed=1)

    env = {k: v for k, v in __import__("os").environ.items() if k not in CI_VARIABLES}
    env.update(GITHUB_SHA="4b825dc6", GITHUB_REF_NAME="main",
               GITHUB_SERVER_URL="https://github.example", GITHUB_REPOSITORY="acme/shop",
               GITHUB_RUN_ID="77", TM_URL=server.url, TM_TOKEN=token)
    done = command("junit", str(report), str(SUREFIRE), "--machine", "gha-linux", env=env)
    assert done.returncode == 0, done.stderr
    run = Run.objects.get(machine__machine_name="gha-linux")
    assert done.stdout.strip() == (
        f"tm-reporter: 16 tests imported (8 passed, 3 failed, 2 error, 2 skipped, 1 xfailed, "
        f"3 retried): {server.url}/machines/runs/{run.pk}/")
    assert (run.commit, run.branch, run.build_url) == (
        "4b825dc6", "main", "https://github.example/acme/shop/actions/runs/77")
    assert sorted(run.master_scenario.scenarios.values_list("file_name", flat=True)) == [
        "com.acme.shop.CartServiceTest", "pytest"]
    broken = TestResult.objects.get(test__master_scenario__run=run,
                                    test__file_name="test_broken")
    assert "wrong user returned" in broken.message and broken.outcome == "failed"

    # Given on the command line, the values win; a refused import says why and exits 1.
    done = command("junit", str(report), "--machine", "gha-linux", "--branch", "hotfix",
                   env=env)
    assert done.returncode == 0 and Run.objects.filter(branch="hotfix", commit="4b825dc6").exists()
    env["TM_TOKEN"] = "tm_wrong"
    done = command("junit", str(report), "--machine", "gha-linux", env=env)
    assert done.returncode == 1 and "401" in done.stderr
    bad = tmp_path / "bad.xml"
    bad.write_text("<testsuite>")
    assert command("junit", str(bad), "--machine", "m", env=env).returncode == 2


@pytest.mark.unit
def test_the_command_needs_a_machine():
    done = subprocess.run([sys.executable, "-m", "tm_reporter.cli", "junit", "x.xml"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--machine" in done.stderr
