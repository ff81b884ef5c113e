"""Flaky tests: which tests both pass and fail without a change that explains it.

No Django import here: tm_api.history reads the results, this module judges them.

A test (an identity, tm_api.outcomes.identity) is **flaky** when, among its results in the window:
- it passed and failed on the same commit (in two runs, on any machines), or
- it failed and then passed on a retry within one run (its attempts), or
- its outcome flipped (pass -> fail or fail -> pass) at least `min_flips` times over its last
  `runs` results on one branch.
A test that failed every time is **broken**, not flaky; one that always passed is neither. Only
results with a known verdict count: a pass (status `passed`, which includes an expected
failure) or a failure (`failed`, `error`); skips, warnings, cancelled and unknown tests do not.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

PASS, FAIL = "pass", "fail"
VERDICT = {"passed": PASS, "failed": FAIL, "error": FAIL}
COUNTED_STATUSES = tuple(VERDICT)


class Result(NamedTuple):
    """One test of one run, as the judgement needs it; results are given oldest first."""

    key: str  # the identity's digest
    file_path: str
    file_name: str
    run: int
    branch: str
    commit: str
    when: datetime
    status: str  # passed, failed or error
    passed_on_retry: bool = False

    @property
    def verdict(self) -> str:
        return VERDICT[self.status]


@dataclass
class Flaky:
    key: str
    file_path: str
    file_name: str
    flips: int = 0  # the most flips over the last `runs` results of one branch
    passes: int = 0
    failures: int = 0
    last_seen: datetime | None = None
    last_run: int | None = None
    last_status: str = ""
    commit: str = ""  # a commit it passed and failed on, else its last run's
    branch: str = ""  # the branch of its flips, else its last run's
    reasons: list = field(default_factory=list)


def flips_of(verdicts) -> int:
    """How many times the verdict changed from one result to the next."""
    return sum(1 for before, after in zip(verdicts, verdicts[1:]) if before != after)


def judge(results, runs: int, min_flips: int) -> dict:
    """{key: Flaky} of the flaky tests among `results` (each key's results oldest first)."""
    by_key = defaultdict(list)
    for result in results:
        by_key[result.key].append(result)
    flaky = {}
    for key, own in by_key.items():
        found = _judge_one(key, own, runs, min_flips)
        if found is not None:
            flaky[key] = found
    return flaky


def _judge_one(key, results, runs, min_flips) -> Flaky | None:
    last = results[-1]
    test = Flaky(key, last.file_path, last.file_name, last_seen=last.when, last_run=last.run,
                 last_status=last.status, commit=last.commit, branch=last.branch)
    test.passes = sum(1 for r in results if r.verdict == PASS)
    test.failures = len(results) - test.passes
    retried = [r for r in results if r.passed_on_retry]
    if not test.passes or (not test.failures and not retried):
        return None  # broken (never passed) or steady
    by_commit = defaultdict(set)
    for result in results:
        if result.commit:
            by_commit[result.commit].add(result.verdict)
    both = [commit for commit, verdicts in by_commit.items() if len(verdicts) == 2]
    if both:
        test.commit = both[-1] if last.commit not in both else last.commit
        test.reasons.append(f"passed and failed on commit {test.commit[:12]}")
    if retried:
        test.reasons.append(f"failed, then passed on a retry (run {retried[-1].run})")
        if not both:
            test.commit = retried[-1].commit
    by_branch = defaultdict(list)
    for result in results:
        by_branch[result.branch].append(result.verdict)
    for branch, verdicts in by_branch.items():
        flips = flips_of(verdicts[-runs:])
        if flips > test.flips:
            test.flips = flips
            if flips >= min_flips:
                test.branch = branch
    if test.flips >= min_flips:
        shown = f"branch {test.branch}" if test.branch else "runs without a branch"
        test.reasons.append(f"flipped {test.flips} times in its last {runs} results on {shown}")
    return test if test.reasons else None


def newly_flaky(results, run: int, runs: int, min_flips: int) -> list:
    """The tests flaky with `run`'s results that were not flaky without them: what the
    `new_flaky_test` notification announces when `run` ends."""
    now = judge(results, runs, min_flips)
    before = judge([r for r in results if r.run != run], runs, min_flips)
    return [test for key, test in now.items() if key not in before]
