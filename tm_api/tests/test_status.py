"""The roll-up priority and the transition rules of the test-machine API, exhaustively and by
property."""

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tm_api import status as S
from tm_api.tests.conftest import count_statuses

pytestmark = pytest.mark.unit

statuses = st.sampled_from(S.PRIORITY)
runs = st.dictionaries(st.integers(0, 30), statuses, max_size=12)


def test_priority_is_section_b_order():
    assert S.PRIORITY == (
        "cancelled", "running", "waiting", "unknown", "failed", "error", "warning", "passed"
    )
    assert S.STOP_STATUSES == ("cancelled", "unknown", "failed", "error", "warning", "passed")


def test_roll_up_of_every_subset_of_statuses_is_its_highest_priority_member():
    for size in range(1, len(S.PRIORITY) + 1):
        for subset in itertools.combinations(S.PRIORITY, size):
            expected = min(subset, key=S.PRIORITY.index)
            assert S.roll_up(count_statuses(subset)) == expected
            assert S.roll_up(count_statuses(list(subset) * 3)) == expected


def test_roll_up_of_nothing_is_unknown():
    assert S.roll_up(count_statuses([])) == S.UNKNOWN
    assert S.roll_up(S.empty_counts()) == S.UNKNOWN


@given(st.lists(statuses, min_size=1, max_size=40))
def test_roll_up_is_present_and_outranks_every_other_status(found):
    result = S.roll_up(count_statuses(found))
    assert result in found
    assert all(S.PRIORITY.index(result) <= S.PRIORITY.index(s) for s in found)


@given(st.lists(statuses, max_size=30), st.lists(st.tuples(statuses, statuses), max_size=30))
def test_shift_keeps_counts_equal_to_a_recount(initial, moves):
    tests = list(initial)
    counts = count_statuses(tests)
    for old, new in moves:
        if old in tests:
            tests[tests.index(old)] = new
            counts = S.shift(counts, [(old, new)])
        else:
            with pytest.raises(ValueError):
                S.shift(counts, [(old, new)])
    assert counts == count_statuses(tests)
    assert S.roll_up(counts) == S.roll_up(count_statuses(tests))
    assert S.is_ongoing(counts) == any(s in S.ONGOING for s in tests)


@given(runs, st.integers(0, 30))
def test_start_runs_the_test_and_makes_other_running_tests_unknown(run, test):
    if run.get(test) != S.WAITING:
        with pytest.raises(S.NoMatchingTest):
            S.start(run, test)
        return
    changes = S.start(run, test)
    after = {**run, **changes}
    assert after[test] == S.RUNNING
    assert [t for t, s in after.items() if s == S.RUNNING] == [test]
    for other, new in changes.items():
        if other != test:
            assert run[other] == S.RUNNING and new == S.UNKNOWN
    # Only what changes is returned, nothing else moves.
    assert all(run[t] != new for t, new in changes.items())


@given(runs, st.integers(0, 30), st.sampled_from(S.STOP_STATUSES))
def test_stop_ends_a_running_test_and_cancelled_cancels_the_run(run, test, outcome):
    if run.get(test) != S.RUNNING:
        with pytest.raises(S.NoMatchingTest):
            S.stop(run, test, outcome)
        return
    changes = S.stop(run, test, outcome)
    after = {**run, **changes}
    assert after[test] == outcome
    if outcome == S.CANCELLED:
        assert not any(s in S.ONGOING for s in after.values())
        assert set(changes) == {t for t, s in run.items() if s in S.ONGOING}
    else:
        assert changes == {test: outcome}


@pytest.mark.parametrize("bad", ["running", "waiting", "PASSED", "", None, "ok"])
def test_stop_with_a_status_a_machine_may_not_report_lists_the_allowed_ones(bad):
    with pytest.raises(S.InvalidStatus) as caught:
        S.stop({1: S.RUNNING}, 1, bad)
    assert "cancelled, unknown, failed, error, warning, passed" in str(caught.value)


@given(runs)
def test_supersede_turns_exactly_the_ongoing_tests_unknown(run):
    changes = S.supersede(run)
    after = {**run, **changes}
    assert not any(s in S.ONGOING for s in after.values())
    assert set(changes) == {t for t, s in run.items() if s in S.ONGOING}
    assert set(changes.values()) <= {S.UNKNOWN}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2018-12-30 13:01:57.461401", datetime(2018, 12, 30, 13, 1, 57, 461401, UTC)),
        ("2018-12-30T13:01:57Z", datetime(2018, 12, 30, 13, 1, 57, tzinfo=UTC)),
        ("2018-12-30T15:01:57+02:00", datetime(2018, 12, 30, 13, 1, 57, tzinfo=UTC)),
        ("2018-12-30", datetime(2018, 12, 30, tzinfo=UTC)),
    ],
)
def test_client_timestamps_without_zone_are_utc(text, expected):
    assert S.parse_client_timestamp(text) == expected


def test_client_timestamps_can_be_read_in_a_configured_zone():
    moment = S.parse_client_timestamp("2018-07-01 12:00:00", ZoneInfo("Europe/Warsaw"))
    assert moment == datetime(2018, 7, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["", "yesterday", "2018-13-40 10:00", None, 17])
def test_bad_client_timestamps_are_refused(bad):
    with pytest.raises(ValueError):
        S.parse_client_timestamp(bad)


def test_iso_and_duration():
    start = datetime(2018, 12, 30, 13, 1, 57, 461401, UTC)
    assert S.iso(start) == "2018-12-30T13:01:57.461401Z"
    assert S.iso(None) is None
    assert S.duration_seconds(start, start + timedelta(seconds=2.5)) == 2.5
    assert S.duration_seconds(start, None) is None


@pytest.mark.parametrize("bad", ["0001-01-01T00:00:00+14:00", "0001-01-01 00:00:00",
                                 "9999-12-31T23:59:59-14:00", "1969-12-31 23:59:59",
                                 "2200-01-01 00:00:00"])
def test_timestamps_outside_the_sane_years_are_refused_naming_the_range(bad):
    with pytest.raises(ValueError) as caught:
        S.parse_client_timestamp(bad)
    assert "between the years 1970 and 2199" in str(caught.value)


@pytest.mark.parametrize("edge", ["1970-01-01T00:00:00+14:00", "2199-12-31T23:59:59-14:00"])
def test_the_range_edges_are_accepted_in_any_zone(edge):
    assert S.parse_client_timestamp(edge).utcoffset() is not None


def test_error_messages_quote_only_a_prefix_of_a_huge_value():
    huge = "x" * 1_000_000
    for call in (lambda: S.parse_client_timestamp(huge), lambda: S.check_stop_status(huge)):
        with pytest.raises(ValueError) as caught:
            call()
        assert len(str(caught.value)) < 200
