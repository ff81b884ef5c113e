"""`pytest --tm-url ... --tm-machine ...` run with pytester against a live server."""

import pytest
import requests

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration

SUITE = """
import pytest

def test_ok():
    assert True

def test_broken():
    assert 1 == 2

@pytest.fixture
def bad_fixture():
    raise RuntimeError("no database")

def test_setup_error(bad_fixture):
    pass

@pytest.mark.skip(reason="later")
def test_skipped():
    pass

@pytest.mark.xfail(reason="known")
def test_known_bug():
    assert False

class TestGroup:
    @pytest.mark.parametrize("n", [1, 2])
    def test_param(self, n):
        assert n
"""


def last_run(server, machine_name):
    machines = requests.get(server.url + "/tm_api/machines/", timeout=5).json()["results"]
    machine = next(m for m in machines if m["machine_name"] == machine_name)
    return requests.get(f"{server.url}/tm_api/machine_last_data/{machine['id']}/",
                        timeout=5).json()["last_master_scenario"]


def test_a_pytest_run_shows_up_with_mapped_outcomes(pytester, server_factory):
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(
        "-p", "no:django", "-p", "no:cacheprovider", "--tm-url", server.url,
        "--tm-machine", "laptop-ci")
    result.assert_outcomes(passed=3, failed=1, errors=1, skipped=1, xfailed=1)
    run = last_run(server, "laptop-ci")
    [scenario] = run["scenarios"]
    assert scenario["file_name"] == "test_suite.py"
    assert {t["file_name"]: t["status"] for t in scenario["tests"]} == {
        "test_ok": "passed", "test_broken": "failed", "test_setup_error": "error",
        "test_skipped": "warning", "test_known_bug": "passed",
        "TestGroup::test_param[1]": "passed", "TestGroup::test_param[2]": "passed",
    }
    assert run["status"] == "failed" and run["tests_count"] == 7
    assert run["tests_statistics"]["waiting"] == 0 and run["tests_statistics"]["running"] == 0


def test_the_plugin_is_off_without_tm_url(pytester):
    pytester.makepyfile(test_one="def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:django", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "tm-reporter:" not in result.stdout.str()


def test_a_server_that_is_down_never_fails_the_tests(pytester):
    pytester.makepyfile(test_one="def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:django", "-p", "no:cacheprovider", "--tm-url", "http://127.0.0.1:9",
        "--tm-timeout", "0.5", "--tm-retries", "0")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    assert "tm-reporter: POST /tm_api/dry_run/ failed" in result.stdout.str()
