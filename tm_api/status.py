"""Test statuses and the rules that move them: the domain core of test-machine progress.

No Django import here: services apply these rules to rows, tests exercise them exhaustively.

Vocabulary
- A *run* (the test-machine API's dry-run data and master scenario) holds scenarios, a scenario
  holds tests.
- *Counts* are how many tests of a scenario or run are in each status; they are stored beside
  the rows and moved by `shift` as tests change, so reads never scan the tests.
- The *roll-up* of a scenario or run is the first status present among its tests in PRIORITY.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo

from plumbing import time_range

CANCELLED = "cancelled"
RUNNING = "running"
WAITING = "waiting"
UNKNOWN = "unknown"
FAILED = "failed"
ERROR = "error"
WARNING = "warning"
PASSED = "passed"
NOT_AVAILABLE = "not-available"  # a machine with no run yet

# The test-machine API's rule: a scenario or run takes the first status present among its
# children in this order.
PRIORITY = (CANCELLED, RUNNING, WAITING, UNKNOWN, FAILED, ERROR, WARNING, PASSED)
STATUSES = frozenset(PRIORITY)
ONGOING = frozenset({RUNNING, WAITING})
FINISHED = STATUSES - ONGOING
# What a machine may report when a test stops (a stop that leaves a test ongoing means nothing).
STOP_STATUSES = tuple(s for s in PRIORITY if s in FINISHED)

# The roll-up of a scenario or run without tests (the earlier dashboard's answer too).
EMPTY_ROLL_UP = UNKNOWN


def preview(value, limit: int = 40) -> str:
    """A bad value as an error message quotes it: at most `limit` characters of its repr, so a
    megabyte of garbage is not echoed back (twice) in the answer."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class InvalidStatus(ValueError):
    def __init__(self, status, allowed=STOP_STATUSES):
        self.status = status
        self.allowed = tuple(allowed)
        super().__init__(
            f"{preview(status)} is not a valid status; use one of: {', '.join(self.allowed)}."
        )


def check_stop_status(status) -> str:
    if status not in STOP_STATUSES:
        raise InvalidStatus(status)
    return status


def empty_counts() -> dict[str, int]:
    return {status: 0 for status in PRIORITY}


def roll_up(counts: Mapping[str, int]) -> str:
    for status in PRIORITY:
        if counts.get(status, 0) > 0:
            return status
    return EMPTY_ROLL_UP


def is_ongoing(counts: Mapping[str, int]) -> bool:
    return any(counts.get(status, 0) for status in ONGOING)


def shift(counts: Mapping[str, int], changes: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Counts after tests moved: `changes` is (old status, new status) per changed test."""
    moved = {status: counts.get(status, 0) for status in PRIORITY}
    for old, new in changes:
        if moved[old] <= 0:
            raise ValueError(f"no {old} test to move to {new}")
        moved[old] -= 1
        moved[new] += 1
    return moved


# --- transitions -------------------------------------------------------------------------------
# Each takes the current status of every test of ONE run ({test id: status}) and returns only
# the tests that change ({test id: new status}). Services write exactly these.

class NoMatchingTest(LookupError):
    """The machine has no test in the state the operation needs (start: waiting, stop: running)."""


def start(run: Mapping[object, str], test) -> dict:
    """`test` starts: it runs, and any other running test of the run is now `unknown` (its stop
    never came: the machine moved on)."""
    if run.get(test) != WAITING:
        raise NoMatchingTest(f"test {test!r} is {run.get(test)}, not waiting")
    changes = {other: UNKNOWN for other, status in run.items() if status == RUNNING}
    changes[test] = RUNNING
    return changes


def stop(run: Mapping[object, str], test, status: str) -> dict:
    """`test` ends with `status`; `cancelled` cancels every other ongoing test of the run too."""
    check_stop_status(status)
    if run.get(test) != RUNNING:
        raise NoMatchingTest(f"test {test!r} is {run.get(test)}, not running")
    changes = {}
    if status == CANCELLED:
        changes = {other: CANCELLED for other, st in run.items() if st in ONGOING}
    changes[test] = status
    return changes


def supersede(run: Mapping[object, str]) -> dict:
    """A new dry run of the same machine: the earlier run's ongoing tests will never report."""
    return {test: UNKNOWN for test, status in run.items() if status in ONGOING}


# --- client timestamps -------------------------------------------------------------------------

def parse_client_timestamp(text, zone: tzinfo = UTC) -> datetime:
    """Machines send "2018-12-30 13:01:57.461401" (local time, no zone): read it in `zone`.
    ISO 8601 with a zone ("...T13:01:57Z", "+02:00") keeps its own zone."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("expected a timestamp like 2018-12-30 13:01:57.461401")
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"{preview(text)} is not a timestamp; expected e.g. 2018-12-30 13:01:57.461401"
        ) from None
    # Machines' clocks drift, but not by centuries; one such stored date broke every page
    # listing its machine.
    if not time_range.accepted(moment):
        raise ValueError(
            f"{preview(text)} is out of range; timestamps must be between the years "
            f"{time_range.EARLIEST_YEAR} and {time_range.LATEST_YEAR}"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 as DRF writes it (UTC as Z)."""
    if moment is None:
        return None
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def duration_seconds(start: datetime | None, stop: datetime | None) -> float | None:
    if start is None or stop is None:
        return None
    return round((stop - start).total_seconds(), 3)
