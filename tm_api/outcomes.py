"""Test outcomes as test tools know them, beside the test-machine API's statuses.

No Django import here. A test's *status* is the test-machine API's (it drives the roll-ups
that existing machines and pages rely on, tm_api.status); its *outcome* is what the test tool
said: passed, failed, error, skipped, xfailed, xpassed. A report may carry both (the pytest
plugin does); with only an outcome, the status is OUTCOME_STATUS's.

A test's *identity*, stable across runs (what per-test history keys on), is its file_path and
file_name: for pytest the module path and the rest of the node id (`TestA::test_b[1]`), for a
JUnit XML report the testcase's classname (else its file) and its name.
"""

PASSED, FAILED, ERROR = "passed", "failed", "error"
SKIPPED, XFAILED, XPASSED = "skipped", "xfailed", "xpassed"
OUTCOMES = (PASSED, FAILED, ERROR, SKIPPED, XFAILED, XPASSED)

# The status an outcome gives the test when the report names no status. A skip is a `warning`
# (as the pytest plugin always sent it); an expected failure is a pass; an unexpected pass is a
# `warning` (pytest itself does not fail the session for it, unless strict, which it reports
# as failed).
OUTCOME_STATUS = {
    PASSED: "passed", FAILED: "failed", ERROR: "error", SKIPPED: "warning",
    XFAILED: "passed", XPASSED: "warning",
}

# The detail texts a report may carry, each kept to at most MAX_DETAIL characters.
DETAIL_FIELDS = ("message", "traceback", "stdout", "stderr", "log")
MAX_DETAIL = 64 * 1024
MAX_ATTEMPTS = 100


def bounded(text: str, limit: int = MAX_DETAIL) -> str:
    """`text` cut to at most `limit` characters, its head and tail kept (an assertion's
    message starts a traceback, its cause ends it) and the cut said where it was made."""
    if len(text) <= limit:
        return text
    marker = "\n[... {} characters cut ...]\n"
    room = limit - len(marker.format(len(text)))
    head = room // 4
    tail = room - head
    return text[:head] + marker.format(len(text) - head - tail) + text[len(text) - tail:]


def attempts_of(outcomes) -> list[str]:
    """The outcome of each attempt, the last the test's own: a test retried (pytest-
    rerunfailures, Surefire's rerunFailingTestsCount) has more than one."""
    return [str(outcome) for outcome in outcomes][-MAX_ATTEMPTS:]


def is_flaky_attempts(attempts) -> bool:
    """Failed, then passed, within one run: what retries hide and history should remember."""
    return len(attempts) > 1 and attempts[-1] == PASSED and any(
        attempt in (FAILED, ERROR) for attempt in attempts[:-1])


RESULT_FIELDS = ("outcome", "attempts", *DETAIL_FIELDS, "trace_id")


def result_of(data) -> dict | None:
    """The TestResult fields a stop carries, or None when it carries none (then nothing is
    written beside the test)."""
    given = {name: data[name] for name in RESULT_FIELDS if data.get(name)}
    if not given:
        return None
    if "attempts" in given and "outcome" not in given:
        given["outcome"] = given["attempts"][-1]
    given.setdefault("attempts", [given["outcome"]] if given.get("outcome") else [])
    return given
