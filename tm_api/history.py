"""Tests across runs: one test's history, the flaky tests, two runs compared, quarantines.

The rules are in the pure modules (tm_api.flaky, tm_api.compare, tm_api.outcomes.identity);
this module reads what they need with indexed queries:
- a test's history: `identity_key` + `-id` index, newest first, at most `limit` rows;
- flaky tests: the runs received in the window (`received` index), their tests whose
  identity failed at least once there (`master_scenario, status` index), judged in Python;
- a comparison: the two runs' tests (`master_scenario, status` index).
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifications import rules
from tm_api import compare as C
from tm_api import flaky as F
from tm_api import outcomes as O
from tm_api import status as S
from tm_api.models import Quarantine, Run, Test

# Statuses a history shows: the test ended with a verdict the machine gave (not waiting,
# running, or `unknown` because a newer run or silence ended it).
HISTORY_STATUSES = (S.PASSED, S.FAILED, S.ERROR, "warning", "cancelled")
MAX_HISTORY = 500
MAX_CANDIDATES = 20
# A run's end reads its identities as a list up to this many (window_results); a larger run
# is read with a subquery (SQLite takes at most 32,766 values in a statement).
MAX_LISTED_KEYS = 5000


class AmbiguousName(ValueError):
    def __init__(self, name, candidates):
        self.candidates = candidates
        shown = ", ".join(candidates[:MAX_CANDIDATES])
        super().__init__(f"{len(candidates)}{'+' if len(candidates) > MAX_CANDIDATES else ''} "
                         f"tests are named {name!r}: give the full identity, one of: {shown}.")


class UnknownTest(LookupError):
    pass


def resolve(name: str) -> tuple[str, str, str]:
    """(key, file_path, file_name) of the test called `name`: its full identity (a pytest node
    id, `classname::name`, a script's path) or, when that names no test, its name alone (the
    file_name) if exactly one test has it. Raises UnknownTest or AmbiguousName."""
    key = O.identity_key(name)
    test = Test.objects.filter(identity_key=key).order_by("-id").values_list(
        "file_path", "file_name").first()
    if test is not None:
        return key, *test
    found = {}
    for key, file_path, file_name in (Test.objects.filter(file_name=name).order_by("-id")
                                      .values_list("identity_key", "file_path", "file_name")
                                      .iterator(chunk_size=500)):
        found.setdefault(key, (file_path, file_name))
        if len(found) > MAX_CANDIDATES:
            break
    if not found:
        raise UnknownTest(f"No test is called {name!r} (a full identity such as "
                          f"'tests/test_api.py::test_login', or a test's name).")
    if len(found) > 1:
        raise AmbiguousName(name, [O.identity(*paths) for paths in found.values()])
    [(key, (file_path, file_name))] = found.items()
    return key, file_path, file_name


def history(key: str, limit: int = 50, branch: str = "", machine: str = "") -> list[Test]:
    """The test's latest results (runs newest first, in the order they arrived), with their
    runs, machines and results."""
    tests = (Test.objects.filter(identity_key=key, status__in=HISTORY_STATUSES)
             .select_related("master_scenario__run__machine", "result")
             .order_by("-id"))
    if branch:
        tests = tests.filter(master_scenario__run__branch=branch)
    if machine:
        tests = tests.filter(machine__name_key=machine.casefold())
    return list(tests[:limit])


def tally(tests) -> tuple[int, int, float | None]:
    """(passed, failed, pass rate) of `tests` by their verdicts (flaky.VERDICT: an error is a
    failure; skipped and cancelled tests count for neither); the rate is None without any."""
    verdicts = [F.VERDICT[t.status] for t in tests if t.status in F.VERDICT]
    passed = verdicts.count(F.PASS)
    return passed, len(verdicts) - passed, passed / len(verdicts) if verdicts else None


# --- flaky tests -------------------------------------------------------------------------------

def window_start(now=None):
    return (now or timezone.now()) - timedelta(days=settings.TM_FLAKY_DAYS)


def window_results(since, run: Run | None = None) -> list[F.Result]:
    """The results flakiness is judged on, oldest first: the tests with a verdict of the runs
    received since `since` whose identity failed there at least once (or passed on a retry);
    with `run`, only the identities of that run's tests.

    With `run` (when a run ends, in the transaction of its last report, the run locked) the
    read goes in steps, each a look-up by an index: the run's identities, those of them that
    failed or passed on a retry in the window (usually none: then nothing more is read), their
    results.
    As one statement with the run's identities as a subquery, PostgreSQL planned a loop over
    every result of the window that ran the subquery again for each: 272 ms for a window of
    1,560 tests (bench/tm_live.py, where it made the slowest 1 % of the reports)."""
    in_window = Test.objects.filter(master_scenario__run__received__gte=since)
    if run is None:
        keys = in_window.filter(Q(status__in=("failed", "error"))
                                | Q(result__passed_on_retry=True)).values("identity_key")
    else:
        failed = in_window.filter(status__in=("failed", "error"))
        retried = in_window.filter(result__passed_on_retry=True)
        # order_by(): Test's default ordering would make DISTINCT keep a row per test.
        own = list(Test.objects.filter(master_scenario__run=run).order_by()
                   .values_list("identity_key", flat=True).distinct()[:MAX_LISTED_KEYS + 1])
        mine = own if len(own) <= MAX_LISTED_KEYS else Test.objects.filter(
            master_scenario__run=run).values("identity_key")
        # The failures and the retries apart, in one UNION: as one OR, PostgreSQL read every
        # test and every result of the tables, whatever the window, for the retry's left join
        # (75 against 1 ms for a run of 2,000 tests beside 216,000 others; the retries are few,
        # indexed by the partial index tm_result_retried).
        keys = list(failed.filter(identity_key__in=mine).order_by()
                    .values_list("identity_key", flat=True)
                    .union(retried.filter(identity_key__in=mine).order_by()
                           .values_list("identity_key", flat=True)))
        if not keys:
            return []
    rows = (in_window.filter(status__in=F.COUNTED_STATUSES, identity_key__in=keys)
            .order_by("master_scenario__run__received", "id")
            .values_list("identity_key", "file_path", "file_name", "master_scenario__run_id",
                         "master_scenario__run__branch", "master_scenario__run__commit",
                         "master_scenario__run__received", "status", "result__passed_on_retry"))
    return [F.Result(*row[:-1], passed_on_retry=bool(row[-1])) for row in rows]


def flaky_tests(now=None) -> list[F.Flaky]:
    """The flaky tests of the window, the last seen first."""
    found = F.judge(window_results(window_start(now)), settings.TM_FLAKY_RUNS,
                    settings.TM_FLAKY_FLIPS)
    return sorted(found.values(), key=lambda t: (t.last_seen, t.key), reverse=True)


def notify_new_flaky(master) -> list[F.Flaky]:
    """When a run ends: its tests that its results made flaky raise `new_flaky_test` (one
    notification per test; quarantined tests are known already and stay quiet). One query
    (the window's results of the run's tests that failed at least once), and a second only
    when some test turned flaky (their quarantines)."""
    if not any(master.tests_statistics.get(status) for status in F.COUNTED_STATUSES):
        return []  # no test passed or failed (all cancelled, skipped, unknown): no verdict
    run = master.run
    found = F.newly_flaky(window_results(window_start(), run), run.pk,
                          settings.TM_FLAKY_RUNS, settings.TM_FLAKY_FLIPS)
    quarantined = quarantines_of([test.key for test in found])
    found = [test for test in found if test.key not in quarantined]
    for test in found:
        rules.new_flaky_test(run, O.identity(test.file_path, test.file_name), test.key,
                             test.reasons, history_link=history_path(test.file_path,
                                                                     test.file_name))
    return found


def history_path(file_path: str, file_name: str) -> str:
    from urllib.parse import urlencode

    from django.urls import reverse

    return reverse("tm_api:test-history") + "?" + urlencode(
        {"name": O.identity(file_path, file_name)})


# --- comparing two runs ------------------------------------------------------------------------

def previous_run(run: Run, against: str = "machine") -> Run | None:
    """The run before `run` of the same machine (`against="machine"`) or on the same branch,
    any machine (`"branch"`; None for a run without a branch)."""
    runs = Run.objects.select_related("machine", "master_scenario")
    if against == "branch":
        if not run.branch:
            return None
        runs = runs.filter(branch=run.branch)
    else:
        runs = runs.filter(machine_id=run.machine_id)
    return (runs.filter(Q(timestamp__lt=run.timestamp)
                        | Q(timestamp=run.timestamp, pk__lt=run.pk))
            .order_by("-timestamp", "-pk").first())


def sides_of(run: Run) -> list[C.Side]:
    """The run's tests in dry-run order, as tuples (a run can hold thousands)."""
    rows = (Test.objects.filter(master_scenario__run=run).order_by("position")
            .values_list("identity_key", "file_path", "file_name", "pk", "status",
                         "result__outcome", "timestamp_start", "timestamp_stop"))
    return [C.Side(key, path, name, pk, status, outcome or "",
                   S.duration_seconds(start, stop))
            for key, path, name, pk, status, outcome, start, stop in rows]


def compare_runs(base: Run, head: Run) -> dict:
    return C.compare(sides_of(base), sides_of(head))


# --- quarantine --------------------------------------------------------------------------------

def quarantines_of(keys) -> dict:
    """{key: Quarantine} of those of `keys` that are quarantined."""
    keys = set(keys)
    if not keys:
        return {}
    return {q.identity_key: q for q in Quarantine.objects.filter(identity_key__in=keys)}


def quarantine(key, file_path, file_name, reason: str, user) -> tuple[Quarantine, bool]:
    """Mark the test quarantined (or change its reason); (the mark, whether it is new)."""
    with transaction.atomic():
        mark, created = Quarantine.objects.select_for_update().get_or_create(
            identity_key=key, defaults={
                "file_path": file_path, "file_name": file_name, "reason": reason, "by": user,
                "by_name": user.get_username()})
        if not created:
            mark.reason, mark.by, mark.by_name = reason, user, user.get_username()
            mark.created = timezone.now()
            mark.save(update_fields=["reason", "by", "by_name", "created"])
    return mark, created


def release(key) -> bool:
    """Lift the test's quarantine; whether it was quarantined."""
    deleted, _ = Quarantine.objects.filter(identity_key=key).delete()
    return bool(deleted)
