"""`pytest --tm-url ... --tm-machine ...` run with pytester against a live server."""

import json
import re
from pathlib import Path

import pytest
import requests

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration

# Every outcome, a retry and a parametrized class: the suite the JUnit import's tests run too.
SUITE = (Path(__file__).parents[3] / "tm_api" / "tests" / "fixtures" / "pytest_suite.py").read_text()


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
    assert result.parseoutcomes() == {"passed": 4, "failed": 1, "errors": 1, "skipped": 1,
                                      "xfailed": 1, "xpassed": 1, "rerun": 1}
    run = last_run(server, "laptop-ci")
    [scenario] = run["scenarios"]
    assert scenario["file_name"] == "test_suite.py"
    assert {t["file_name"]: t["status"] for t in scenario["tests"]} == {
        "test_ok": "passed", "test_broken": "failed", "test_setup_error": "error",
        "test_skipped": "warning", "test_known_bug": "passed", "test_fixed_meanwhile": "failed",
        "test_flaky": "passed",
        "TestGroup::test_param[1]": "passed", "TestGroup::test_param[2]": "passed",
    }
    assert run["status"] == "failed" and run["tests_count"] == 9
    assert run["tests_statistics"]["waiting"] == 0 and run["tests_statistics"]["running"] == 0


def test_the_plugin_is_off_without_tm_url(pytester):
    pytester.makepyfile(test_one="def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:django", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "tm-reporter:" not in result.stdout.str()


def test_a_server_that_is_down_never_fails_the_tests(pytester, tmp_path):
    pytester.makepyfile(test_one="def test_ok():\n    pass\n")
    spool = tmp_path / "spool.jsonl"
    result = pytester.runpytest_subprocess(
        "-p", "no:django", "-p", "no:cacheprovider", "--tm-url", "http://127.0.0.1:9",
        "--tm-spool", str(spool))
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        f"tm-reporter: 0 results sent, 1 kept in {spool}, sent next session "
        "(server unreachable (connection refused))"])


# --- batches, the end of the session, the spool -------------------------------------------------

RUN = ["-p", "no:django", "-p", "no:cacheprovider", "-p", "no:randomly"]
# How long the end of the session took is said when it took a while (a loaded machine).
AFTER = r"(, the last ones in [\d.]+ s after the tests)?"


@pytest.fixture(autouse=True)
def spool_dir(tmp_path, monkeypatch):
    """The default spool of the sessions these tests start: never the developer's ~/.cache."""
    directory = tmp_path / "spool"
    monkeypatch.setenv("TM_SPOOL_DIR", str(directory))
    return directory


def many_tests(count, prefix="test"):
    return "\n".join(f"def {prefix}_{n:04d}():\n    pass\n" for n in range(count))


def runs_of(server, machine_name):
    """The machine's runs, newest first."""
    machines = requests.get(server.url + "/tm_api/machines/", timeout=5).json()["results"]
    [machine] = [m for m in machines if m["machine_name"] == machine_name]
    return requests.get(f"{server.url}/tm_api/machine_dry_run_datas/{machine['id']}",
                        timeout=5).json()["results"]


def statistics(run):
    return {k: v for k, v in run["tests_statistics"].items() if v}


def test_every_result_of_a_few_hundred_fast_tests_arrives(pytester, server_factory):
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True")
    pytester.makepyfile(test_many=many_tests(400))
    result = pytester.runpytest_subprocess(*RUN, "--tm-url", server.url, "--tm-machine", "fast")
    result.assert_outcomes(passed=400)
    result.stdout.re_match_lines([rf"tm-reporter: 400 results sent{AFTER}$"])
    run = last_run(server, "fast")
    assert run["tests_count"] == 400 and statistics(run) == {"passed": 400}
    assert run["status"] == "passed"


def test_with_the_server_down_results_are_kept_and_sent_first_next_session(
        pytester, server_factory, tmp_path):
    from plumbing.devserver import free_port

    spool = tmp_path / "kept" / "rack.jsonl"
    down = f"http://127.0.0.1:{free_port()}"
    pytester.makepyfile(test_first=many_tests(30, "test_first"))
    first = pytester.runpytest_subprocess(*RUN, "--tm-url", down, "--tm-machine", "rack",
                                          "--tm-spool", str(spool))
    first.assert_outcomes(passed=30)
    first.stdout.fnmatch_lines([f"tm-reporter: 0 results sent, 30 kept in {spool}, "
                                "sent next session (server unreachable (connection refused))"])
    assert spool.read_text().count('"test_stop"') == 30

    # The same spool reaches the server that is up now, whatever its address.
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True")
    (pytester.path / "test_first.py").unlink()
    pytester.makepyfile(test_second=many_tests(20, "test_second"))
    second = pytester.runpytest_subprocess(*RUN, "--tm-url", server.url, "--tm-machine", "rack",
                                           "--tm-spool", str(spool))
    second.assert_outcomes(passed=20)
    second.stdout.re_match_lines([
        rf"tm-reporter: 50 results sent \(30 of them from an earlier session\){AFTER}$"])
    # Sent before this session's dry run: the earlier run is complete, not superseded.
    runs = runs_of(server, "rack")
    assert [(r["tests_count"], statistics(r)) for r in runs] == [
        (20, {"passed": 20}), (30, {"passed": 30})]
    assert spool.read_text() == ""
    third = pytester.runpytest_subprocess(*RUN, "--tm-url", server.url, "--tm-machine", "rack",
                                          "--tm-spool", str(spool))
    third.stdout.re_match_lines([rf"tm-reporter: 20 results sent{AFTER}$"])


KILLED_SUITE = many_tests(10, "test_before") + '''

def test_killed():
    import glob, os, signal, time
    spool = os.environ["TM_SPOOL"]
    deadline = time.monotonic() + 60
    # Until the sender has written the last stop before this test to its journal.
    while time.monotonic() < deadline:
        journals = "".join(open(p).read() for p in glob.glob(spool + ".*.session"))
        if journals.count('"test_stop"') == 10:
            break
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGKILL)
'''


def test_a_killed_session_leaves_its_reports_to_the_next(pytester, server_factory, tmp_path,
                                                        monkeypatch):
    from plumbing.devserver import free_port

    spool = tmp_path / "rack.jsonl"
    monkeypatch.setenv("TM_SPOOL", str(spool))
    pytester.makepyfile(test_killed=KILLED_SUITE)
    killed = pytester.runpytest_subprocess(*RUN, "--tm-url", f"http://127.0.0.1:{free_port()}",
                                           "--tm-machine", "rack", timeout=120)
    # Killed: no summary (only the line naming where the run goes, printed at its start).
    assert killed.ret == -9 and "results sent" not in killed.stdout.str()
    assert len(list(tmp_path.glob("rack.jsonl.*.session"))) == 1

    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True")
    (pytester.path / "test_killed.py").unlink()
    pytester.makepyfile(test_after="def test_after():\n    pass\n")
    after = pytester.runpytest_subprocess(*RUN, "--tm-url", server.url, "--tm-machine", "rack")
    after.stdout.re_match_lines([
        rf"tm-reporter: 11 results sent \(10 of them from an earlier session\){AFTER}$"])
    runs = runs_of(server, "rack")
    # The killed run: its ten results, and its last test, never finished, marked unknown.
    assert [statistics(r) for r in runs] == [{"passed": 1}, {"passed": 10, "unknown": 1}]
    assert not list(tmp_path.glob("rack.jsonl.*.session"))


WATCHING_SUITE = many_tests(5, "test_early") + '''

def test_sees_the_early_ones_on_the_server():
    import os, time
    import requests
    url = os.environ["WATCH_URL"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        machines = requests.get(url + "/tm_api/machines/", timeout=5).json()["results"]
        if machines:
            run = requests.get(f"{url}/tm_api/machine_last_data/{machines[0]['id']}/",
                               timeout=5).json()["last_master_scenario"]
            if run["tests_statistics"]["passed"] == 5:
                assert run["tests_statistics"]["running"] == 1  # this test, as it runs
                return
        time.sleep(0.1)
    raise AssertionError("the first results never reached the server during the session")
'''


def test_results_reach_the_server_while_the_session_runs(pytester, server_factory,
                                                         monkeypatch):
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True")
    monkeypatch.setenv("WATCH_URL", server.url)
    pytester.makepyfile(test_watching=WATCHING_SUITE)
    result = pytester.runpytest_subprocess(*RUN, "--tm-url", server.url, "--tm-machine", "live")
    result.assert_outcomes(passed=6)
    assert statistics(last_run(server, "live")) == {"passed": 6}


SOURCES = '''import sys

import pytest


@pytest.mark.parametrize("n", [1, 2])
def test_decorated(n):
    assert n


class TestGroup:
    def test_method(self):
        # a comment inside
        assert True


if sys.platform:
    def test_conditional():
        assert (
            1
        )

try:
    import json
except ImportError:
    pass
else:
    def test_in_else():
        assert json
'''


def test_the_dry_run_carries_each_test_s_source(pytester, tmp_path):
    """Each test's script is its function's lines, decorators included, wherever the def sits
    among the module's statements (read from the spool: the server is down)."""
    pytester.makepyfile(test_sources=SOURCES)
    spool = tmp_path / "spool.jsonl"
    result = pytester.runpytest_subprocess(*RUN, "--tm-url", "http://127.0.0.1:9",
                                           "--tm-spool", str(spool))
    result.assert_outcomes(passed=5)
    [dry_run] = [report for line in spool.read_text().splitlines()
                 for report in json.loads(line)["reports"] if report["type"] == "dry_run"]
    [module] = dry_run["master_scenario"]["scenarios"]
    scripts = {test["file_name"]: test["script"] for test in module["tests"]}
    lines = SOURCES.splitlines(keepends=True)
    assert scripts == {
        "test_decorated[1]": "".join(lines[5:8]), "test_decorated[2]": "".join(lines[5:8]),
        "TestGroup::test_method": "".join(lines[11:14]),
        "test_conditional": "".join(lines[17:21]),
        "test_in_else": "".join(lines[27:29]),
    }
    assert scripts["test_conditional"].startswith("    def test_conditional():")


def test_each_test_has_trace_ids_of_its_own_when_the_suite_seeds_random(pytester, tmp_path):
    """The ids are the plugin's own generator's: a suite seeding the global one before every
    test (as pytest-randomly does) still gets a new trace per test."""
    seen = tmp_path / "traceparents.txt"
    pytester.makeconftest(f'''
import os
import random

import pytest


@pytest.fixture(autouse=True)
def reseed():
    random.seed(1234)
    yield
    with open({str(seen)!r}, "a") as out:
        out.write(os.environ["TM_TRACEPARENT"] + "\\n")
''')
    pytester.makepyfile(test_ids=many_tests(5))
    result = pytester.runpytest_subprocess(*RUN, "--tm-url", "http://127.0.0.1:9",
                                           "--tm-spool", str(tmp_path / "spool.jsonl"))
    result.assert_outcomes(passed=5)
    parents = seen.read_text().split()
    assert len(parents) == 5
    assert all(re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", p) for p in parents), parents
    assert len({p.split("-")[1] for p in parents}) == 5
    assert len({p.split("-")[2] for p in parents}) == 5
