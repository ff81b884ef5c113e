"""A live run's progress and the time it has left: the arithmetic, with no Django import.

The dry run lists the planned tests. Each gets an *expected* duration when the run is recorded
(`expected_of`: the median of its last passed/failed durations, or None for a test never seen).
The run then keeps a small *state* (a dict, stored as JSON beside its roll-ups) that every
start and stop moves by subtraction, in the UPDATE the report makes anyway: no history is read
per report. Durations are integer milliseconds, so the sums stay exact however many tests move.

state = {
  "left":    sum of the expected durations of the tests not yet finished that have one,
  "unknown": how many tests not yet finished have none,
  "busy":    sum of the durations of the run's finished tests (passed or failed),
  "timed":   how many those are (busy / timed: the run's mean, for the unknown tests),
  "first":   earliest start seen, "last": latest stop seen (epoch ms; last - first = wall time),
  "running": [start, expected or None] of the test in progress (a run has at most one: a start
             makes any other running test `unknown`), or None,
  "at":      the machine's time of the run's latest report (epoch ms),
}

seconds left = (left + unknown x mean - what the test in progress has done of its expected
time) / parallelism, where parallelism = busy / wall time when above 1 (pytest-xdist's workers
report tests that overlap), else 1.
"""

from collections.abc import Iterable
from datetime import datetime
from statistics import median

# How many of a test's latest durations its expectation is the median of.
RECENT = 5
RUNNING = "running"
WAITING = "waiting"
ONGOING = frozenset({RUNNING, WAITING})
# Only real results time a test: a skip, an error or a test the machine gave up on says little
# about how long the next run of it takes.
TIMED = frozenset({"passed", "failed"})


def ms(moment: datetime | None) -> int | None:
    return None if moment is None else round(moment.timestamp() * 1000)


def expected_of(durations: Iterable[int]) -> int:
    """A test's expected duration (ms) from its latest durations, newest first: the median of
    the RECENT newest (one slow run does not move it far)."""
    recent = list(durations)[:RECENT]
    if not recent:
        raise ValueError("no durations")
    return round(median(recent))


def plan(expected: Iterable[int | None]) -> dict:
    """The state of a run whose planned tests (all waiting) have these expected durations."""
    everything = list(expected)
    known = [value for value in everything if value is not None]
    return {"left": sum(known), "unknown": len(everything) - len(known), "busy": 0, "timed": 0,
            "first": None, "last": None, "running": None, "at": None}


def moved(state: dict | None, moves: Iterable[tuple], when: datetime) -> dict | None:
    """The state after tests moved. `moves`: (old status, new status, expected ms or None,
    its start, its stop) per test, start and stop as they are after the move; `when`: the
    report's time. A run recorded before states were kept (None) stays without one."""
    if state is None:
        return None
    state = dict(state)
    for old, new, expected, start, stop in moves:
        if old == WAITING and new == RUNNING:
            state["running"] = [ms(start), expected]
            state["first"] = _least(state["first"], ms(start))
            continue
        if old not in ONGOING or new in ONGOING:
            continue
        # A planned test is over: its expectation leaves the sums.
        if expected is None:
            state["unknown"] = max(0, state["unknown"] - 1)
        else:
            state["left"] = max(0, state["left"] - expected)
        if old == RUNNING:
            state["running"] = None
            if new in TIMED and start is not None and stop is not None:
                state["busy"] += max(0, ms(stop) - ms(start))
                state["timed"] += 1
                state["first"] = _least(state["first"], ms(start))
                state["last"] = max(state["last"] or ms(stop), ms(stop))
    state["at"] = ms(when)
    return state


def _least(a, b):
    return b if a is None else a if b is None else min(a, b)


def parallelism(state: dict) -> float:
    """How many tests ran at once, as observed: the finished tests' time over the wall time
    they took; 1 unless the run has workers."""
    if not state["timed"] or state["first"] is None or state["last"] is None:
        return 1.0
    wall = state["last"] - state["first"]
    if wall <= 0:
        return 1.0
    return max(1.0, state["busy"] / wall)


def estimate(state: dict | None, since_report_ms: int = 0) -> tuple[float | None, float]:
    """(seconds left or None, seconds of it the test in progress accounts for), as of
    `since_report_ms` after the run's latest report. None: tests without history remain and
    none of this run has finished to stand in for them."""
    if state is None:
        return None, 0.0
    mean = state["busy"] / state["timed"] if state["timed"] else None
    if state["unknown"] and mean is None:
        return None, 0.0
    work = state["left"] + state["unknown"] * (mean or 0)
    running_left = 0.0
    if state["running"] is not None:
        start, expected = state["running"]
        expected = expected if expected is not None else mean
        if expected is not None:
            done = (state["at"] or start) - start + since_report_ms
            running_left = expected - min(max(0, done), expected)
            work -= expected - running_left
    parallel = parallelism(state)
    return round(max(0.0, work) / parallel / 1000, 3), round(running_left / parallel / 1000, 3)


def summary(state: dict | None, planned: int, done: int, ongoing: bool,
            since_report_ms: int = 0) -> dict:
    """What pages and the API show: {planned, done, percent, ongoing, seconds_left,
    running_left, parallelism}. A finished run has no time left; percent is rounded down, so 100 means
    every planned test is done."""
    percent = 100 * done // planned if planned else (0 if ongoing else 100)
    body = {"planned": planned, "done": done, "percent": percent, "ongoing": ongoing,
            "seconds_left": None,
            "running_left": 0.0, "parallelism": 1.0}
    if not ongoing:
        body["seconds_left"] = 0.0
        return body
    if state is not None:
        body["seconds_left"], body["running_left"] = estimate(state, since_report_ms)
        body["parallelism"] = round(parallelism(state), 2)
    return body
