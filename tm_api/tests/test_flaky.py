"""Which tests are flaky (tm_api/flaky.py): the rules, case by case and by property."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tm_api import flaky as F

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def results(*runs, key="k", branch="main"):
    """One result per (status, commit[, passed_on_retry]) in `runs`, oldest first."""
    made = []
    for n, (status, commit, *retry) in enumerate(runs):
        made.append(F.Result(key, "tests/test_a.py", "test_x", n + 1, branch, commit,
                             T0 + timedelta(minutes=n), status, bool(retry and retry[0])))
    return made


def test_passed_and_failed_on_one_commit_is_flaky():
    found = F.judge(results(("passed", "c1"), ("failed", "c1")), runs=20, min_flips=3)
    test = found["k"]
    assert test.reasons == ["passed and failed on commit c1"]
    assert (test.passes, test.failures, test.commit, test.flips) == (1, 1, "c1", 1)
    assert test.last_run == 2 and test.last_status == "failed"


def test_an_error_counts_as_a_failure_and_other_commits_do_not_mix():
    assert "k" in F.judge(results(("error", "c1"), ("passed", "c1")), 20, 3)
    # Failed on one commit, fixed on the next: a regression and its fix, not flakiness.
    assert F.judge(results(("passed", "c1"), ("failed", "c2"), ("passed", "c3")), 20, 3) == {}


def test_a_retry_that_passed_is_flaky_within_one_run():
    found = F.judge(results(("passed", "c1", True)), 20, 3)
    assert found["k"].reasons == ["failed, then passed on a retry (run 1)"]
    assert found["k"].commit == "c1"


def test_flips_over_the_last_runs_of_a_branch():
    flipping = results(("passed", "a"), ("failed", "b"), ("passed", "c"), ("failed", "d"))
    assert F.judge(flipping, 20, 3)["k"].reasons == [
        "flipped 3 times in its last 20 results on branch main"]
    assert F.judge(flipping, 20, 4) == {}  # below the threshold
    # Only the last `runs` results count: the last three flip twice.
    assert F.judge(flipping, 3, 3) == {}
    assert F.judge(flipping, 3, 2)["k"].flips == 2


def test_flips_are_counted_per_branch():
    mixed = (results(("passed", "a"), ("passed", "b"), branch="main")
             + results(("failed", "c"), ("failed", "d"), branch="feature"))
    # Interleaved in time, the branches would flip; each one alone never does.
    mixed.sort(key=lambda r: r.when)
    assert F.judge(mixed, 20, 1) == {}


def test_a_test_that_always_fails_is_broken_not_flaky():
    assert F.judge(results(("failed", "c1"), ("failed", "c1"), ("error", "c2")), 20, 1) == {}


def test_a_test_that_always_passes_is_not_flaky():
    assert F.judge(results(("passed", "c1"), ("passed", "c1")), 20, 1) == {}


def test_newly_flaky_names_the_tests_a_run_made_flaky():
    before = results(("passed", "c1"), ("passed", "c1"))
    then = before + [F.Result("k", "tests/test_a.py", "test_x", 9, "main", "c1",
                              T0 + timedelta(hours=1), "failed")]
    assert [t.key for t in F.newly_flaky(then, 9, 20, 3)] == ["k"]
    # Already flaky before the run: not new.
    again = then + [F.Result("k", "tests/test_a.py", "test_x", 10, "main", "c1",
                             T0 + timedelta(hours=2), "passed")]
    assert F.newly_flaky(again, 10, 20, 3) == []


# A retry's flag only on a pass (the test passed at last, after failing).
verdicts = st.lists(st.tuples(st.sampled_from(["passed", "failed", "error"]),
                              st.sampled_from(["", "c1", "c2", "c3"]), st.booleans())
                    .map(lambda r: (r[0], r[1], r[2] and r[0] == "passed")),
                    min_size=1, max_size=30)


@given(verdicts, st.integers(2, 10), st.integers(1, 5))
def test_properties(runs, window, min_flips):
    made = results(*runs)
    found = F.judge(made, window, min_flips)
    statuses = [status for status, _, _ in runs]
    retried = any(retry for _, _, retry in runs)
    if "passed" not in statuses:
        assert found == {}  # broken, never flaky
    if set(statuses) == {"passed"} and not retried:
        assert found == {}
    if "k" in found:
        test = found["k"]
        assert test.reasons and test.passes + test.failures == len(runs)
        assert test.flips == F.flips_of([F.VERDICT[s] for s in statuses][-window:])
    else:
        both = any({F.VERDICT[s] for s, c, _ in runs if c == commit} == {"pass", "fail"}
                   for commit in {"c1", "c2", "c3"})
        assert not both and not retried
        assert F.flips_of([F.VERDICT[s] for s in statuses][-window:]) < min_flips
