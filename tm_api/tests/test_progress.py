"""tm_api/progress.py: a run's progress and time left, exact to the millisecond; and the
services keeping it (expected durations from history at the dry run, moved by each report)."""

from datetime import UTC, datetime, timedelta

import pytest

from tm_api import bodies, services
from tm_api import progress as P
from tm_api.models import MasterScenario, Test

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def at(seconds):
    return T0 + timedelta(seconds=seconds)


def start(state, expected, when):
    return P.moved(state, [("waiting", "running", expected, at(when), None)], at(when))


def stop(state, expected, started, stopped, status="passed"):
    return P.moved(state, [("running", status, expected, at(started), at(stopped))], at(stopped))


# --- expected durations -----------------------------------------------------------------------

@pytest.mark.unit
def test_a_tests_expectation_is_the_median_of_its_five_newest_durations():
    assert P.expected_of([1000]) == 1000
    assert P.expected_of([1000, 3000]) == 2000
    assert P.expected_of([5000, 1000, 3000]) == 3000
    # The sixth and older do not count: one slow run long ago is forgotten.
    assert P.expected_of([100, 200, 300, 400, 500, 99_000, 99_000]) == 300
    assert P.expected_of([1, 2]) == 2  # 1.5 rounded to the even millisecond
    with pytest.raises(ValueError):
        P.expected_of([])


# --- the state and the estimate ---------------------------------------------------------------

@pytest.mark.unit
def test_a_planned_run_sums_the_known_expectations_and_counts_the_unknown_ones():
    state = P.plan([2000, None, 3000, None])
    assert state == {"left": 5000, "unknown": 2, "busy": 0, "timed": 0, "first": None,
                     "last": None, "running": None, "at": None}
    # Unknown tests and nothing finished to stand in for them: no estimate yet.
    assert P.estimate(state) == (None, 0.0)
    assert P.estimate(P.plan([2000, 3000])) == (5.0, 0.0)
    assert P.estimate(P.plan([])) == (0.0, 0.0)


@pytest.mark.unit
def test_serial_run_time_left_step_by_step():
    state = P.plan([10_000, 20_000, None])  # 10 s, 20 s, unknown
    state = start(state, 10_000, 0)
    # The running test has done nothing yet of its 10 s.
    assert P.estimate(state) == (None, 0.0)  # the unknown test has no stand-in yet
    state = stop(state, 10_000, 0, 12)  # took 12 s
    assert state["left"] == 20_000 and state["unknown"] == 1
    assert (state["busy"], state["timed"]) == (12_000, 1)
    # 20 s expected + 12 s (this run's mean) for the unknown test.
    assert P.estimate(state) == (32.0, 0.0)
    state = start(state, 20_000, 13)
    assert P.estimate(state) == (32.0, 20.0)
    # 5 s after its start: 15 s left of it, and 12 s for the last one.
    assert P.estimate(state, since_report_ms=5000) == (27.0, 15.0)
    # Overrunning its expectation does not make the time left negative, nor less than the rest.
    assert P.estimate(state, since_report_ms=60_000) == (12.0, 0.0)
    state = stop(state, 20_000, 13, 31)  # 18 s
    assert (state["left"], state["busy"], state["timed"]) == (0, 30_000, 2)
    assert P.estimate(state) == (15.0, 0.0)  # the unknown test: the mean of 12 s and 18 s
    state = start(state, None, 31)
    assert P.estimate(state, since_report_ms=4000) == (11.0, 11.0)
    state = stop(state, None, 31, 40)
    assert state["unknown"] == 0 and P.estimate(state) == (0.0, 0.0)
    assert P.parallelism(state) == 1.0  # 39 s of tests in 40 s


@pytest.mark.unit
def test_tests_that_ran_in_parallel_divide_the_time_left():
    # pytest-xdist, two workers: start and stop of each test arrive together when it ends.
    state = P.plan([4000] * 6)
    for begun, ended in ((0, 4), (0, 4), (4, 8), (4, 8)):
        state = P.moved(state, [("waiting", "running", 4000, at(begun), None)], at(ended))
        state = P.moved(state, [("running", "passed", 4000, at(begun), at(ended))], at(ended))
    # 16 s of tests in 8 s: two at once; 8 s of tests left take 4 s.
    assert P.parallelism(state) == 2.0
    assert P.estimate(state) == (4.0, 0.0)


@pytest.mark.unit
def test_tests_that_end_without_a_result_leave_the_sums_but_time_nothing():
    state = P.plan([1000, 2000, 3000, None])
    state = start(state, 1000, 0)
    # A start of another test while one runs: that one became unknown (status.start).
    state = P.moved(state, [("running", "unknown", 1000, at(0), at(5)),
                            ("waiting", "running", 2000, at(5), None)], at(5))
    assert (state["left"], state["busy"], state["timed"]) == (5000, 0, 0)
    assert state["running"] == [P.ms(at(5)), 2000]
    # A skip ends a test without timing it; a cancel ends the rest.
    state = stop(state, 2000, 5, 6, status="warning")
    assert (state["left"], state["timed"], state["running"]) == (3000, 0, None)
    state = P.moved(state, [("waiting", "cancelled", 3000, None, None),
                            ("waiting", "cancelled", None, None, None)], at(7))
    assert (state["left"], state["unknown"]) == (0, 0)


@pytest.mark.unit
def test_a_run_without_a_state_keeps_none_and_shows_its_counts_only():
    assert P.moved(None, [("waiting", "running", None, at(0), None)], at(0)) is None
    assert P.summary(None, 10, 4, ongoing=True) == {
        "planned": 10, "done": 4, "percent": 40, "ongoing": True, "seconds_left": None, "running_left": 0.0,
        "parallelism": 1.0}


@pytest.mark.unit
def test_the_summary_rounds_the_percentage_down_and_a_finished_run_has_no_time_left():
    state = P.plan([1000, 1000, 1000])
    assert P.summary(state, 3, 2, ongoing=True)["percent"] == 66
    assert P.summary(state, 3, 3, ongoing=False) == {
        "planned": 3, "done": 3, "percent": 100, "ongoing": False, "seconds_left": 0.0, "running_left": 0.0,
        "parallelism": 1.0}
    assert P.summary(P.plan([]), 0, 0, ongoing=False)["percent"] == 100


# --- kept by the services ---------------------------------------------------------------------

def tree(*names):
    return {"file_path": "/m", "file_name": "master.py", "script": "", "scenarios": [
        {"file_path": "/s", "file_name": "s.py", "script": "",
         "tests": [{"file_path": "/t", "file_name": name, "script": ""} for name in names]}]}


def finish(machine, name, begun, ended, status="passed"):
    services.start_test(machine, "/t", name, at(begun))
    services.stop_test(machine, "/t", name, status, at(ended))


@pytest.mark.django_db
def test_the_dry_run_plans_from_the_machines_history_and_reports_move_it():
    services.record_dry_run("rack", at(0), tree("a.py", "b.py"))
    finish("rack", "a.py", 0, 10)
    finish("rack", "b.py", 10, 14, status="failed")
    services.record_dry_run("rack", at(100), tree("a.py", "b.py"))
    finish("rack", "a.py", 100, 106)
    finish("rack", "b.py", 106, 106.5, status="error")  # errors do not time a test

    run = services.record_dry_run("rack", at(200), tree("a.py", "b.py", "new.py"))
    tests = {t.file_name: t.expected_ms
             for t in Test.objects.filter(master_scenario__run=run)}
    assert tests == {"a.py": 8000, "b.py": 4000, "new.py": None}
    master = MasterScenario.objects.get(run=run)
    assert (master.progress["left"], master.progress["unknown"]) == (12_000, 1)
    assert bodies.progress(master) == {"planned": 3, "done": 0, "percent": 0, "ongoing": True,
                                       "seconds_left": None, "running_left": 0.0,
                                       "parallelism": 1.0}

    finish("rack", "a.py", 200, 209)
    master.refresh_from_db()
    # b.py's 4 s, and new.py as this run's mean (9 s).
    assert bodies.progress(master) == {"planned": 3, "done": 1, "percent": 33, "ongoing": True,
                                       "seconds_left": 13.0, "running_left": 0.0,
                                       "parallelism": 1.0}
    services.start_test("rack", "/t", "b.py", at(210))
    master.refresh_from_db()
    assert bodies.progress(master)["seconds_left"] == 13.0
    assert bodies.progress(master)["running_left"] == 4.0


@pytest.mark.django_db
def test_a_batch_moves_the_progress_as_the_reports_one_by_one_do():
    services.record_dry_run("rack", at(0), tree("a.py", "b.py", "c.py"))
    finish("rack", "a.py", 0, 2)
    finish("rack", "b.py", 2, 5)
    finish("rack", "c.py", 5, 6)
    run = services.record_dry_run("rack", at(10), tree("a.py", "b.py", "c.py"))
    outcomes = services.apply_reports("rack", [
        (services.TEST_START, {"file_path": "/t", "file_name": "a.py",
                               "timestamp_start": at(10)}),
        (services.TEST_STOP, {"file_path": "/t", "file_name": "a.py", "status": "passed",
                              "timestamp_stop": at(13)}),
        (services.TEST_START, {"file_path": "/t", "file_name": "b.py",
                               "timestamp_start": at(13)}),
    ])
    assert [o["status"] for o in outcomes] == [202, 202, 202]
    master = MasterScenario.objects.get(run=run)
    assert master.progress["left"] == 4000 and master.progress["busy"] == 3000
    assert bodies.progress(master) == {"planned": 3, "done": 1, "percent": 33, "ongoing": True,
                                       "seconds_left": 4.0, "running_left": 3.0,
                                       "parallelism": 1.0}


@pytest.mark.unit
def test_pages_say_the_time_left_to_the_nearest_minute():
    from tm_api.templatetags.tm_format import time_left

    assert [time_left(s) for s in (None, 0, 29.9, 30, 89.9, 90, 3569, 3570, 3869, 3870)] == [
        "estimating the time left…", "less than a minute left", "less than a minute left",
        "about 1 min left", "about 1 min left", "about 2 min left", "about 59 min left",
        "about 1 h left", "about 1 h 4 min left", "about 1 h 5 min left"]
