"""The three things a machine reports, one function each, one transaction each.

    record_dry_run(machine_name, timestamp, master_scenario_tree) -> Run
    start_test(machine_name, file_path, file_name, timestamp=None) -> Test
    stop_test(machine_name, file_path, file_name, status, timestamp=None) -> Test

and many of them at once, as one transaction whose statements do not grow with the reports:

    apply_reports(machine_name, [(kind, validated data)]) -> [outcome per report]

REST views, the demo machines and tests all call these. The rules (roll-up, what a start or a
stop does to the other tests) come from tm_api.status; this module applies them to rows, keeps
the stored roll-ups in step and publishes live frames after commit.

Work per report is proportional to the report: a start or stop reads the test it matches (with
its scenario and run, locked) and writes that test and the roll-ups it moves; its frames say
only what changed (tm_api.live). Only a start while another test runs, and a cancel, read the
other tests they change.
"""

import json
from collections import defaultdict
from datetime import datetime, timedelta
from typing import NamedTuple

import psycopg
from django.db import IntegrityError, transaction
from django.db.models import DurationField, ExpressionWrapper, F
from django.utils import timezone

from notifications import rules
from plumbing.jsonio import database_json
from plumbing.library_internals.django_compiled_query import CompiledQuery, in_django_wrapper
from tm_api import bodies, history, live
from tm_api import outcomes as O
from tm_api import progress as P
from tm_api import status as S
from tm_api.models import (
    Machine,
    MasterScenario,
    Run,
    Scenario,
    Test,
    TestResult,
    ci_of,
    machine_key,
)
from tm_api.status import NoMatchingTest


class MachineNotFound(LookupError):
    def __init__(self, machine_name):
        self.machine_name = machine_name
        super().__init__(
            f"No machine named {machine_name!r}: a machine appears with its first dry run "
            f"(POST /tm_api/dry_run/)."
        )


# --- dry run -----------------------------------------------------------------------------------

def record_dry_run(machine_name: str, timestamp: datetime, master_scenario: dict,
                   ci: dict | None = None, plan: bool = True) -> Run:
    """A new run of `machine_name` with every test `waiting`, in the tree's order.

    `master_scenario` = {file_path, file_name, script, scenarios: [{..., tests: [{...}]}]}.
    The machine is created on its first run. Ongoing tests of its earlier runs become `unknown`.
    `ci` = {commit, branch, build_url}, where the run's code came from (optional). `plan`:
    read the tests' recent durations for the run's time left (a run reported whole at once,
    a JUnit import, has no use for it).
    """
    return _record_dry_run(machine_name, timestamp, master_scenario, ci, plan).run


class _Recorded(NamedTuple):
    """A dry run's rows as written: what a batch's reports after it start from."""

    run: Run
    machine: Machine
    master: MasterScenario
    scenarios: list
    tests: list


def _record_dry_run(machine_name, timestamp, master_scenario, ci, plan) -> _Recorded:
    now = timezone.now()
    with transaction.atomic():
        machine = _lock_or_create_machine(machine_name)
        superseded = [
            (master, _supersede(master, now))
            for master in MasterScenario.objects.select_for_update()
            .select_related("run")
            .filter(run__machine=machine, status__in=S.ONGOING)
        ]
        run = Run.objects.create(machine=machine, timestamp=timestamp, **(ci or {}))
        scenario_trees = master_scenario.get("scenarios") or []
        test_count = sum(len(scenario.get("tests") or []) for scenario in scenario_trees)
        # Each test's fields once: [(its scenario's index, its fields)], in the dry run's order.
        listed = [(index, _script_fields(test)) for index, tree in enumerate(scenario_trees)
                  for test in tree.get("tests") or []]
        expected = expected_durations(machine, {
            (fields["file_path"], fields["file_name"]) for _, fields in listed
        }) if plan else {}
        planned = [expected.get((fields["file_path"], fields["file_name"]))
                   for _, fields in listed]
        master = MasterScenario.objects.create(
            run=run,
            **_script_fields(master_scenario),
            status=S.WAITING if test_count else S.EMPTY_ROLL_UP,
            tests_statistics={**S.empty_counts(), S.WAITING: test_count},
            tests_count=test_count,
            scenarios_count=len(scenario_trees),
            progress=P.plan(planned),
        )
        scenarios = Scenario.objects.bulk_create(
            Scenario(
                master_scenario=master,
                position=position,
                **_script_fields(tree),
                status=S.WAITING if tree.get("tests") else S.EMPTY_ROLL_UP,
                tests_statistics={**S.empty_counts(), S.WAITING: len(tree.get("tests") or [])},
                tests_count=len(tree.get("tests") or []),
            )
            for position, tree in enumerate(scenario_trees)
        )
        tests = _insert_tests(machine, master,
                              [(scenarios[index].pk, fields) for index, fields in listed], planned)

        last = machine.last_run
        if last is None or timestamp >= last.timestamp:
            machine.last_run = run
            machine.save(update_fields=["last_run"])
        run.machine = machine
        master.run = run

        for earlier, changed in superseded:
            live.publish_run(machine, earlier, changed.scenario_rows())
        rows = {scenario.pk: [] for scenario in scenarios}
        for test in tests:
            rows[test.scenario_id].append(
                bodies.test_row(test.pk, test.file_name, test.status, None, None))
        live.publish_run(machine, master,
                         [bodies.scenario_row(scenario, rows[scenario.pk]) for scenario in scenarios],
                         whole=True)
    return _Recorded(run, machine, master, scenarios, tests)


# A test's expected duration comes from its durations in the machine's latest HISTORY_RUNS runs
# (a test no run of this machine timed stands in as the run's mean, tm_api.progress). Two
# bounded reads per dry run, the tests of those runs; none per report. Other machines' runs
# are not read: nothing bounds their size by this run's, and a test's time is the machine's.
HISTORY_RUNS = 5
_MILLISECOND = timedelta(milliseconds=1)


class _NewTest(NamedTuple):
    """A test as a dry run writes it (what _PendingReports.seed and the run's frame read)."""

    pk: int
    scenario_id: int
    file_path: str
    file_name: str
    expected_ms: int | None
    status: str = S.WAITING
    timestamp_start: None = None
    timestamp_stop: None = None


# A dry run's tests in one statement on PostgreSQL, from one JSON text: bulk_create made a model
# per test and bound 12 values per test on the client (50 of the 160 ms a 2,000-test dry run
# took in all).
_INSERT_TESTS = """
INSERT INTO "tm_api_test" ("file_path", "file_name", "script", "status", "position",
    "machine_id", "master_scenario_id", "scenario_id", "identity_key", "expected_ms")
SELECT t.file_path, t.file_name, t.script, %(status)s, t.position, %(machine)s, %(master)s,
    t.scenario_id, t.identity_key, t.expected_ms
FROM json_to_recordset(%(tests)s::json) AS t(file_path text, file_name text, script text,
    position integer, scenario_id bigint, identity_key text, expected_ms integer)
ORDER BY t.position
RETURNING "id", "position"
"""


def _insert_tests(machine, master, tests: list, planned: list) -> list[_NewTest]:
    """tests: [(scenario pk, _script_fields of the test)] in the dry run's order; planned: each
    one's expected ms. Every test is written `waiting`."""
    if not tests:
        return []
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        rows = [{**fields, "position": position, "scenario_id": scenario,
                 "identity_key": O.key_of(fields["file_path"], fields["file_name"]),
                 "expected_ms": planned[position]}
                for position, (scenario, fields) in enumerate(tests)]
        # Bound by the server: the tests' JSON text (1.4 MB for 2,000 tests with their sources)
        # is neither quoted by the driver (13 ms) nor scanned by the server's parser as a
        # literal (7 ms).
        raw = psycopg.Cursor(connection.connection)
        with in_django_wrapper(connection, raw) as cursor:
            cursor.execute(_INSERT_TESTS, {"status": S.WAITING, "machine": machine.pk,
                                           "master": master.pk, "tests": database_json(rows)})
            pks = {position: pk for pk, position in cursor.fetchall()}
    else:
        made = Test.objects.bulk_create([
            Test(scenario_id=scenario, master_scenario=master, machine=machine,
                 position=position, status=S.WAITING, **fields, expected_ms=planned[position],
                 identity_key=O.key_of(fields["file_path"], fields["file_name"]))
            for position, (scenario, fields) in enumerate(tests)], batch_size=500)
        pks = {test.position: test.pk for test in made}
    return [_NewTest(pks[position], scenario, fields["file_path"], fields["file_name"],
                     planned[position])
            for position, (scenario, fields) in enumerate(tests)]


def expected_durations(machine: Machine, files: set) -> dict:
    """{(file_path, file_name): expected ms} of the planned `files` that passed or failed in
    the machine's recent runs (progress.expected_of of their newest durations)."""
    if not files:
        return {}
    recent = list(MasterScenario.objects.filter(run__machine=machine).order_by("-pk")
                  .values_list("pk", flat=True)[:HISTORY_RUNS])
    if not recent:
        return {}
    durations = defaultdict(list)  # file -> [ms], newest run first
    # The duration as the database's interval: one value per row instead of two timestamps,
    # each made an aware datetime by Django's loader in Python (48 against 7 ms for 5 runs of
    # 2,000 tests, a third of such a dry run's time).
    rows = (Test.objects.filter(master_scenario_id__in=recent, status__in=P.TIMED,
                                timestamp_start__isnull=False, timestamp_stop__isnull=False)
            .order_by("-master_scenario_id")
            .values_list("file_path", "file_name", ExpressionWrapper(
                F("timestamp_stop") - F("timestamp_start"), output_field=DurationField())))
    for path, name, took in rows.iterator(chunk_size=2000):
        if (path, name) in files:
            durations[(path, name)].append(max(0, round(took / _MILLISECOND)))
    return {file: P.expected_of(values) for file, values in durations.items()}


def _lock_or_create_machine(machine_name: str) -> Machine:
    key = machine_key(machine_name)
    query = Machine.objects.select_for_update(of=("self",)).select_related("last_run")
    machine = query.filter(name_key=key).first()
    if machine is None:
        try:
            with transaction.atomic():
                Machine.objects.create(machine_name=machine_name)
        except IntegrityError:
            pass  # created meanwhile by a concurrent dry run of the same machine
        machine = query.get(name_key=key)
    return machine


def _script_fields(tree: dict) -> dict:
    return {
        "file_path": tree.get("file_path") or "",
        "file_name": tree.get("file_name") or "",
        "script": tree.get("script") or "",
    }


# --- start and stop ----------------------------------------------------------------------------

def start_test(machine_name, file_path, file_name, timestamp: datetime | None = None) -> Test:
    """The machine's next `waiting` test with this file starts running."""
    when = timestamp or timezone.now()
    with transaction.atomic():
        test = _lock_matching_test(machine_name, file_path, file_name, S.WAITING)
        master = test.master_scenario
        # The run's counts say whether another test runs: only then are the running ones read.
        run = _tests_of(master, [S.RUNNING]) if master.tests_statistics.get(S.RUNNING) else {}
        run[test.pk] = _TestRow.of(test)
        changes = S.start({pk: row.status for pk, row in run.items()}, test.pk)
        changed = _apply_changes(master, changes, when, run, started=test)
        test.status, test.timestamp_start = S.RUNNING, when
        live.publish_run(test.machine, master, changed.scenario_rows())
    return test


def stop_test(machine_name, file_path, file_name, status, timestamp: datetime | None = None,
              result: dict | None = None):
    """The machine's `running` test with this file ends with `status` (see status.stop).
    `result`: what the stop said beyond the status (outcome, attempts, failure details; see
    outcomes.result_of), written beside the test."""
    S.check_stop_status(status)
    when = timestamp or timezone.now()
    with transaction.atomic():
        test = _lock_matching_test(machine_name, file_path, file_name, S.RUNNING)
        master = test.master_scenario
        run = _tests_of(master, S.ONGOING) if status == S.CANCELLED else {}
        run[test.pk] = _TestRow.of(test)
        changes = S.stop({pk: row.status for pk, row in run.items()}, test.pk, status)
        changed = _apply_changes(master, changes, when, run, stopped=test)
        test.status, test.timestamp_stop = status, when
        if result:
            write_results({test.pk: result})
        live.publish_run(test.machine, master, changed.scenario_rows())
    return test


# What a report reads of the test it matches, with its scenario, run and machine, as
# (model, attribute names) in the order of the lock query's columns. Scripts, which can be long,
# stay in the database.
_ROLL_UP = ["id", "status", "tests_statistics", "tests_count", "timestamp_start",
            "timestamp_stop", "file_name", "file_path"]
_MATCHED = [
    (Test, "", ["id", "status", "file_name", "timestamp_start", "timestamp_stop", "scenario_id",
                "master_scenario_id", "machine_id", "expected_ms"]),
    (MasterScenario, "master_scenario__", [*_ROLL_UP, "scenarios_count", "last_report", "run_id",
                                           "progress"]),
    # The CI fields too: a run's live frame (bodies.run_summary) carries them.
    (Run, "master_scenario__run__", ["id", "timestamp", "machine_id", "commit", "branch",
                                     "build_url"]),
    (Machine, "machine__", ["id", "machine_name", "last_run_id"]),
    (Scenario, "scenario__", _ROLL_UP),
]
# Placeholders the query is compiled with, replaced by each report's values.
_PARAMETERS = ("\x00name_key", "\x00file_name", "\x00file_path", "\x00status")


def _matching_query(name_key, file_name, file_path, status):
    return (
        Test.objects.select_for_update(of=("self", "master_scenario", "scenario"))
        .select_related("master_scenario", "master_scenario__run", "machine", "scenario")
        .only(*(prefix + name for _, prefix, names in _MATCHED for name in names
                if prefix + name != "id"))
        .filter(machine__name_key=name_key, file_name=file_name, file_path=file_path,
                status=status)
        .order_by("-master_scenario_id", "position")
    )[:1]


# The lock query of a report, compiled once per database (Django would compile it again at
# every report).
_matching_test = CompiledQuery(_matching_query, _PARAMETERS,
                               [model for model, _, _ in _MATCHED])


def _lock_matching_test(machine_name, file_path, file_name, needed_status) -> Test:
    """The first test (dry-run order, newest run first) of that machine with this file in the
    needed status, with its run locked so concurrent reports of one run apply one at a time.
    Its scenario, run and machine come along (the scenario locked too, so that PostgreSQL
    returns the row as the run's previous report left it)."""
    rows = _matching_test.first((machine_key(machine_name), file_name, file_path, needed_status))
    if rows is not None:
        test, master, run, machine, scenario = rows
        test.master_scenario, test.scenario, test.machine = master, scenario, machine
        master.run, run.machine = run, machine
        return test
    if not Machine.objects.filter(name_key=machine_key(machine_name)).exists():
        raise MachineNotFound(machine_name)
    raise _no_matching_test(machine_name, file_path, file_name, needed_status)


def _no_matching_test(machine_name, file_path, file_name, needed_status) -> NoMatchingTest:
    verb = "start" if needed_status == S.WAITING else "stop"
    return NoMatchingTest(
        f"Machine {machine_name!r} has no {needed_status} test {file_path}/{file_name} "
        f"to {verb}"
        + (": post a dry run listing it first." if verb == "start"
           else ": it was not started, or already stopped, cancelled or superseded.")
    )


class _TestRow(NamedTuple):
    status: str
    scenario_id: int
    file_name: str
    timestamp_start: datetime | None
    timestamp_stop: datetime | None
    expected_ms: int | None

    @classmethod
    def of(cls, test):
        return cls(test.status, test.scenario_id, test.file_name, test.timestamp_start,
                   test.timestamp_stop, test.expected_ms)


def _tests_of(master, statuses) -> dict:
    """{test pk: _TestRow} of the run's tests in `statuses`."""
    rows = Test.objects.filter(master_scenario=master, status__in=statuses).values_list(
        "pk", "status", "scenario_id", "file_name", "timestamp_start", "timestamp_stop",
        "expected_ms")
    return {pk: _TestRow(*row) for pk, *row in rows}


def _supersede(master, when):
    """The run's ongoing tests become `unknown` (status.supersede)."""
    ongoing = _tests_of(master, S.ONGOING)
    changes = S.supersede({pk: row.status for pk, row in ongoing.items()})
    return _apply_changes(master, changes, when, ongoing)


class _Changed(NamedTuple):
    """What one change did to a run: its changed scenarios (roll-ups moved) and tests."""

    scenarios: list
    tests: dict  # scenario pk -> [bodies.test_row]

    def scenario_rows(self) -> list:
        return [bodies.scenario_row(scenario, self.tests[scenario.pk])
                for scenario in self.scenarios]


def _test_moves(changes: dict, when, rows: dict, started=None, stopped=None) -> dict:
    """{test pk: (its _TestRow after, the stamp field set or None)} for `changes` ({test pk: new
    status}; `rows` holds each changed test's _TestRow): the started test (a pk) gets its start,
    the stopped one and every running test that ends get their stop."""
    moves = {}
    for pk, new in changes.items():
        row = rows[pk]
        if pk == started:
            moves[pk] = (row._replace(status=new, timestamp_start=when), "timestamp_start")
        elif pk == stopped or row.status == S.RUNNING:
            moves[pk] = (row._replace(status=new, timestamp_stop=when), "timestamp_stop")
        else:
            moves[pk] = (row._replace(status=new), None)
    return moves


def _status_pairs(moves: dict, rows: dict) -> dict:
    """{scenario pk: [(old status, new status)]} of the moved tests."""
    per_scenario = defaultdict(list)
    for pk, (after, _) in moves.items():
        per_scenario[after.scenario_id].append((rows[pk].status, after.status))
    return per_scenario


def _roll_up(master, scenarios, per_scenario: dict, when, moves: dict, rows: dict) -> None:
    """Move the roll-ups of `scenarios` (every scenario in `per_scenario`) and of the run, and
    the run's progress, in memory, by exactly the tests' moves; the run's last report is now."""
    for scenario in scenarios:
        scenario.apply(per_scenario[scenario.pk], when)
    master.apply([pair for pairs in per_scenario.values() for pair in pairs], when)
    master.progress = P.moved(master.progress, [
        (rows[pk].status, after.status, after.expected_ms, after.timestamp_start,
         after.timestamp_stop) for pk, (after, _) in moves.items()], when)
    master.last_report = timezone.now()


_ROLL_UP_FIELDS = ["tests_statistics", "status", "timestamp_start", "timestamp_stop"]


def _apply_changes(master, changes: dict, when, rows: dict, started=None, stopped=None):
    """Write `changes` ({test pk: new status}; `rows` holds each changed test's _TestRow) and
    move the stored roll-ups of the scenarios and of the run by exactly those changes. Updates
    `master` in place; returns what changed (_Changed)."""
    if not changes:
        return _Changed([], {})
    moves = _test_moves(changes, when, rows, started and started.pk, stopped and stopped.pk)
    tests = defaultdict(list)
    for pk, (after, _) in moves.items():
        tests[after.scenario_id].append(_test_body(pk, after))

    per_scenario = _status_pairs(moves, rows)
    reported = started or stopped
    if reported is not None and list(per_scenario) == [reported.scenario_id]:
        scenarios = [reported.scenario]  # read and locked with the test
    else:
        scenarios = list(Scenario.objects.filter(pk__in=list(per_scenario)).order_by("position"))
    _roll_up(master, scenarios, per_scenario, when, moves, rows)
    # The tests, then their scenarios and run (the order every writer locks them in).
    _write_all(_tests_statements([(pk, after) for pk, (after, _) in moves.items()])
               + [_roll_up_statement(row) for row in (*scenarios, master)])
    if master.status not in S.ONGOING:
        run_ended(master)
    return _Changed(scenarios, tests)


def run_ended(master) -> None:
    """A run ended (nothing waiting or running): the notifications it may raise, in the
    transaction of the report that ended it."""
    rules.run_finished(master)
    history.notify_new_flaky(master)


def _test_body(pk, row) -> dict:
    return bodies.test_row(pk, row.file_name, row.status, row.timestamp_start, row.timestamp_stop)


# --- many reports at once ----------------------------------------------------------------------

DRY_RUN, TEST_START, TEST_STOP = "dry_run", "test_start", "test_stop"


def apply_reports(machine_name: str, reports: list) -> list:
    """Reports of one machine ([(kind, validated data)], kind dry_run, test_start or test_stop),
    applied in order in one transaction, each with the outcome its own endpoint would answer:
    {"type", "status": 201 with "run" | 202 with "test" | 404 or 409 with "code", "detail"}.
    A refused report changes nothing; the others are applied.

    The end state, outcomes and notifications are those of start_test/stop_test/record_dry_run
    called once per report, but the statements do not grow with the reports: the batch's
    candidate tests (its files, waiting or running, of that machine) are read and locked in
    one query, the rules are applied in memory report by report, then the tests are written
    in one bulk update and each touched scenario and run once, with one frame per run. A dry
    run writes what is pending, is recorded as its endpoint does, and the batch goes on.
    """
    files = {(data["file_path"], data["file_name"]) for kind, data in reports
             if kind != DRY_RUN}
    outcomes = []
    results = {}  # test pk -> what its stop said beyond the status
    with transaction.atomic():
        pending = _PendingReports(machine_name, files)
        for kind, data in reports:
            if kind == DRY_RUN:
                pending.write()
                recorded = _record_dry_run(machine_name, data["timestamp"],
                                           data["master_scenario"], ci_of(data),
                                           data.get("plan", True))
                outcomes.append({"type": kind, "status": 201, "run": recorded.run.pk})
                pending = _PendingReports(machine_name, files)
                pending.seed(recorded)
                continue
            try:
                if kind == TEST_START:
                    test = pending.start(data["file_path"], data["file_name"],
                                         data.get("timestamp_start"))
                elif kind == TEST_STOP:
                    test = pending.stop(data["file_path"], data["file_name"], data["status"],
                                        data.get("timestamp_stop"))
                    result = O.result_of(data)
                    if result:
                        results[test] = result
                else:
                    raise ValueError(f"no report of type {kind!r}")
                outcomes.append({"type": kind, "status": 202, "test": test})
            except MachineNotFound as refusal:
                outcomes.append({"type": kind, "status": 404, "code": "machine_not_found",
                                 "detail": str(refusal)})
            except NoMatchingTest as refusal:
                outcomes.append({"type": kind, "status": 409, "code": "no_matching_test",
                                 "detail": str(refusal)})
        pending.write()
        write_results(results)
    return outcomes


def write_results(results: dict) -> None:
    """{test pk: TestResult fields} written in one statement (a test stopped again, by a
    retried import, has its result replaced)."""
    if not results:
        return
    fields = ["outcome", "attempts", "message", "traceback", "stdout", "stderr", "log", "trace_id",
              "passed_on_retry"]
    rows = {pk: {**result, "passed_on_retry": O.is_flaky_attempts(result.get("attempts") or [])}
            for pk, result in results.items()}
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        # Arrays, as _tests_statements: Django's bulk_create compiles a statement per 500 rows and
        # makes a model per row (1 s of a 10,000-test JUnit import).
        table = connection.ops.quote_name(TestResult._meta.db_table)
        types = {"attempts": "jsonb", "passed_on_retry": "boolean"}

        def column(name):
            if name == "attempts":
                return [json.dumps(row.get(name) or []) for row in rows.values()]
            if name == "trace_id":
                return [row.get(name) or None for row in rows.values()]
            if name == "passed_on_retry":
                return [row[name] for row in rows.values()]
            return [row.get(name, "") for row in rows.values()]

        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (test_id, {', '.join(fields)}) SELECT * FROM unnest("
                "%s::bigint[], "
                + ", ".join(f"%s::{types.get(name, 'text')}[]" for name in fields)
                + ") ON CONFLICT (test_id) DO UPDATE SET "
                + ", ".join(f"{name} = EXCLUDED.{name}" for name in fields),
                [list(rows), *(column(name) for name in fields)])
        return
    TestResult.objects.bulk_create(
        [TestResult(test_id=pk, **row) for pk, row in rows.items()],
        update_conflicts=True, unique_fields=["test"], update_fields=fields, batch_size=500)


class _PendingReports:
    """Starts and stops of one machine applied in memory, written at once by write().

    Holds the machine's candidate tests (those of the batch's files that are waiting or
    running), read and locked with their scenarios and runs when the first report needs them;
    a run's other ongoing tests (and its scenarios) are read the first time a start meets a
    running test of it or a cancel needs them, as start_test and stop_test read them. Statuses
    only move forward (waiting, running, finished), so what is held stays complete."""

    def __init__(self, machine_name, files):
        self.machine_name = machine_name
        self.files = files
        self.loaded = False
        self.machine = None
        self.rows = {}  # test pk -> _TestRow as of the reports applied so far
        self.run_of = {}  # test pk -> master scenario pk
        self.tests_of = defaultdict(list)  # master scenario pk -> its test pks in self.rows
        self.candidates = defaultdict(list)  # (file_path, file_name) -> test pks, match order
        self.masters = {}
        self.scenarios = {}
        self.whole = set()  # master pks whose every ongoing test is in self.rows
        self.moved = {}  # master pk -> {scenario pk: {test pk: _TestRow}}, to write
        self.finished = []  # masters ended by a report of the batch

    def start(self, file_path, file_name, timestamp=None) -> int:
        when = timestamp or timezone.now()
        pk = self._match(file_path, file_name, S.WAITING)
        master = self.masters[self.run_of[pk]]
        if master.tests_statistics.get(S.RUNNING):
            self._load_run(master)
        self._apply(master, S.start(self._statuses(master, pk), pk), when, started=pk)
        return pk

    def stop(self, file_path, file_name, status, timestamp=None) -> int:
        S.check_stop_status(status)
        when = timestamp or timezone.now()
        pk = self._match(file_path, file_name, S.RUNNING)
        master = self.masters[self.run_of[pk]]
        if status == S.CANCELLED:
            self._load_run(master)
        self._apply(master, S.stop(self._statuses(master, pk), pk, status), when, stopped=pk)
        return pk

    def _match(self, file_path, file_name, needed_status) -> int:
        """The test _lock_matching_test would find now."""
        if not self.loaded:
            self._load()
        if self.machine is None:
            raise MachineNotFound(self.machine_name)
        for pk in self.candidates[(file_path, file_name)]:
            if self.rows[pk].status == needed_status:
                return pk
        raise _no_matching_test(self.machine_name, file_path, file_name, needed_status)

    def seed(self, recorded: _Recorded):
        """After a dry run, the machine's ongoing tests are the new run's (the earlier runs'
        became unknown): hold them from the rows just written instead of reading them back."""
        self.loaded = True
        self.machine = recorded.machine
        master = recorded.master
        self.masters[master.pk] = master
        self.scenarios.update((scenario.pk, scenario) for scenario in recorded.scenarios)
        for test in recorded.tests:  # in position order
            if (test.file_path, test.file_name) not in self.files:
                continue
            self.rows[test.pk] = _TestRow.of(test)
            self.run_of[test.pk] = master.pk
            self.tests_of[master.pk].append(test.pk)
            self.candidates[(test.file_path, test.file_name)].append(test.pk)

    def _load(self):
        self.loaded = True
        self.machine = (Machine.objects.only("id", "machine_name", "last_run_id")
                        .filter(name_key=machine_key(self.machine_name)).first())
        if self.machine is None or not self.files:
            return
        names = {name for _, name in self.files}
        paths = {path for path, _ in self.files}
        # The tests as tuples, and each of their runs and scenarios read once: model instances
        # per test row (a test, its run and scenario, through select_related) were most of a
        # batch's CPU. Locked in the order a single report locks them: tests, runs, scenarios.
        rows = [row for row in (
            Test.objects.select_for_update()
            .filter(machine=self.machine, status__in=S.ONGOING, file_name__in=names,
                    file_path__in=paths)
            .order_by("-master_scenario_id", "position")
            .values_list("pk", "file_path", "master_scenario_id", *_TestRow._fields))
            if (row[1], row[5]) in self.files]
        if not rows:
            return
        fields = {model: names for model, _, names in _MATCHED}
        self.masters.update((master.pk, master) for master in (
            MasterScenario.objects.select_for_update(of=("self",)).select_related("run")
            .only(*fields[MasterScenario], *("run__" + name for name in fields[Run]))
            .filter(pk__in={row[2] for row in rows}).order_by("-pk")))
        self.scenarios.update((scenario.pk, scenario) for scenario in (
            Scenario.objects.select_for_update()
            .only(*_ROLL_UP, "master_scenario_id", "position")
            .filter(pk__in={row[4] for row in rows}).order_by("pk")))
        for master in self.masters.values():
            master.run.machine = self.machine
        for pk, file_path, master_pk, *test in rows:
            row = self.rows[pk] = _TestRow(*test)
            self.run_of[pk] = master_pk
            self.tests_of[master_pk].append(pk)
            self.candidates[(file_path, row.file_name)].append(pk)

    def _load_run(self, master):
        """The run's other ongoing tests and its scenarios, once."""
        if master.pk in self.whole:
            return
        self.whole.add(master.pk)
        for pk, row in _tests_of(master, S.ONGOING).items():
            if pk not in self.rows:  # what the batch changed is not written yet
                self.rows[pk] = row
                self.run_of[pk] = master.pk
                self.tests_of[master.pk].append(pk)
        for scenario in (Scenario.objects.filter(master_scenario=master)
                         .only(*_ROLL_UP, "master_scenario_id", "position")):
            self.scenarios.setdefault(scenario.pk, scenario)

    def _statuses(self, master, pk) -> dict:
        """What status.start/stop need of the run: the test alone, unless its other tests were
        read (they are, when a start meets a running test or a stop cancels)."""
        if master.pk not in self.whole:
            return {pk: self.rows[pk].status}
        return {other: self.rows[other].status for other in self.tests_of[master.pk]}

    def _apply(self, master, changes, when, started=None, stopped=None):
        moves = _test_moves(changes, when, self.rows, started, stopped)
        per_scenario = _status_pairs(moves, self.rows)
        _roll_up(master, [self.scenarios[pk] for pk in per_scenario], per_scenario, when,
                 moves, self.rows)
        moved = self.moved.setdefault(master.pk, {})
        for pk, (after, _) in moves.items():
            self.rows[pk] = after
            moved.setdefault(after.scenario_id, {})[pk] = after
        if master.status not in S.ONGOING:
            self.finished.append(master)

    def write(self):
        """Write what the reports changed: tests in one statement, each touched scenario and
        run once; then notifications and one frame per run, as the reports one by one would."""
        if not self.moved:
            return
        _write_all(
            _tests_statements([(pk, row) for moved in self.moved.values()
                               for tests in moved.values() for pk, row in tests.items()])
            + _scenario_roll_ups_statements([self.scenarios[pk] for moved in self.moved.values()
                                             for pk in moved])
            + [_roll_up_statement(self.masters[master_pk]) for master_pk in self.moved])
        for master in self.finished:
            run_ended(master)
        for master_pk, moved in self.moved.items():
            scenarios = sorted((self.scenarios[pk] for pk in moved), key=lambda s: s.position)
            live.publish_run(self.machine, self.masters[master_pk], [
                bodies.scenario_row(scenario, [_test_body(pk, row)
                                               for pk, row in moved[scenario.pk].items()])
                for scenario in scenarios])
        self.moved, self.finished = {}, []


_CLIENT_CURSORS = (psycopg.ClientCursor,)  # Django's on PostgreSQL, unless server_side_binding


def _write_all(statements: list) -> None:
    """[(sql, params)], in order. On PostgreSQL in one query string (Django's cursors there bind
    parameters on the client): one round trip and one call through Django's cursor and the
    driver for a report's three UPDATEs, about 0.1 ms of CPU less per report than one each.
    Elsewhere one by one."""
    connection = transaction.get_connection()
    with connection.cursor() as cursor:
        if len(statements) > 1 and isinstance(cursor.cursor, _CLIENT_CURSORS):
            cursor.execute(";\n".join(sql for sql, _ in statements),
                           [value for _, params in statements for value in params])
            return
        for sql, params in statements:
            cursor.execute(sql, params)


def _roll_up_statement(row) -> tuple[str, list]:
    """The UPDATE of a scenario's or a run's roll-up (and a run's last report), made once per
    model and database: Model.save(update_fields=...) compiles its UPDATE each time, which cost
    more CPU than the round trip (a report saves a scenario and a run). Neither model has save()
    overrides or signal receivers that this would skip."""
    connection = transaction.get_connection()
    model = type(row)
    key = (model, connection.alias)
    compiled = _ROLL_UP_STATEMENTS.get(key)
    if compiled is None:
        meta, quote = model._meta, connection.ops.quote_name
        names = _ROLL_UP_FIELDS + (["last_report", "progress"] if model is MasterScenario
                                   else [])
        fields = [meta.get_field(name) for name in names]
        compiled = _ROLL_UP_STATEMENTS[key] = (
            f"UPDATE {quote(meta.db_table)} SET "
            + ", ".join(f"{quote(field.column)} = %s" for field in fields)
            + f" WHERE {quote(meta.pk.column)} = %s", fields)
    sql, fields = compiled
    return sql, [field.get_db_prep_save(getattr(row, field.attname), connection)
                 for field in fields] + [row.pk]


_ROLL_UP_STATEMENTS = {}  # (model, database alias) -> (UPDATE statement, its fields)


def _scenario_roll_ups_statements(scenarios) -> list:
    """_roll_up_statement of many scenarios: on PostgreSQL one statement (a JUnit import moves
    hundreds of scenarios at once; one UPDATE each was a round trip each)."""
    connection = transaction.get_connection()
    if connection.vendor != "postgresql" or len(scenarios) < 2:
        return [_roll_up_statement(scenario) for scenario in scenarios]
    table = connection.ops.quote_name(Scenario._meta.db_table)
    return [(
        f"UPDATE {table} SET tests_statistics = moved.tests_statistics, "
        "status = moved.status, timestamp_start = moved.timestamp_start, "
        "timestamp_stop = moved.timestamp_stop FROM unnest(%s::bigint[], %s::jsonb[], "
        "%s::text[], %s::timestamptz[], %s::timestamptz[]) AS moved (id, tests_statistics, "
        f"status, timestamp_start, timestamp_stop) WHERE {table}.id = moved.id",
        [list(column) for column in zip(*(
            (s.pk, json.dumps(s.tests_statistics), s.status, s.timestamp_start,
             s.timestamp_stop) for s in scenarios))])]


def _tests_statements(rows) -> list:
    """The statements writing tests' status and times from [(pk, _TestRow)]: one (on SQLite, one
    per 249 tests: its statements take at most 999 parameters). Django's bulk_update builds a
    CASE expression per test and field: 0.8 ms of CPU per test, more than the rest of a batch
    together (measured with PostgreSQL). On another database bulk_update writes them here and
    no statement is returned."""
    connection = transaction.get_connection()
    table = connection.ops.quote_name(Test._meta.db_table)
    assignments = (f"UPDATE {table} SET status = reported.status, "
                   "timestamp_start = reported.timestamp_start, "
                   "timestamp_stop = reported.timestamp_stop")
    if not rows:
        return []
    if connection.vendor == "postgresql" and len(rows) == 1:
        # A start's or stop's one test: plain values. Arrays cost psycopg 55 µs of CPU to
        # quote, these 12 (Django's cursors bind on the client).
        (pk, row), = rows
        return [(f"UPDATE {table} SET status = %s, timestamp_start = %s, timestamp_stop = %s "
                 f"WHERE id = %s", [row.status, row.timestamp_start, row.timestamp_stop, pk])]
    if connection.vendor == "postgresql":
        # Arrays: one statement text whatever the batch, which psycopg parses once.
        return [(
            f"{assignments} FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], "
            f"%s::timestamptz[]) AS reported (id, status, timestamp_start, timestamp_stop) "
            f"WHERE {table}.id = reported.id",
            [list(column) for column in zip(*(
                (pk, row.status, row.timestamp_start, row.timestamp_stop) for pk, row in rows))])]
    if connection.vendor != "sqlite":
        Test.objects.bulk_update(
            [Test(pk=pk, status=row.status, timestamp_start=row.timestamp_start,
                  timestamp_stop=row.timestamp_stop) for pk, row in rows],
            ["status", "timestamp_start", "timestamp_stop"])
        return []
    adapt = connection.ops.adapt_datetimefield_value
    per_statement = connection.features.max_query_params // 4
    return [(
        "WITH reported (id, status, timestamp_start, timestamp_stop) AS (VALUES "
        + ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
        + f") {assignments} FROM reported WHERE {table}.id = reported.id",
        [value for pk, row in chunk for value in (
            pk, row.status, adapt(row.timestamp_start), adapt(row.timestamp_stop))])
        for chunk in (rows[first:first + per_statement]
                      for first in range(0, len(rows), per_statement))]


# --- silence ---------------------------------------------------------------------------------

def silence_runs(silent_for, now=None) -> list:
    """Runs still ongoing whose machine has reported nothing for `silent_for`: their waiting
    and running tests become `unknown` (the run ends), and each raises `machine_silent`."""
    now = now or timezone.now()
    silenced = []
    stale = MasterScenario.objects.filter(
        status__in=S.ONGOING, last_report__lt=now - silent_for
    ).values_list("pk", flat=True)
    for pk in stale:
        with transaction.atomic():
            master = (
                MasterScenario.objects.select_for_update(of=("self",))
                .select_related("run__machine")
                .filter(pk=pk, status__in=S.ONGOING, last_report__lt=now - silent_for)
                .first()
            )
            if master is None:  # it reported meanwhile, or another run of this job got it
                continue
            quiet_since = master.last_report
            changed = _supersede(master, now)
            rules.machine_silent(master, quiet_since)
            live.publish_run(master.run.machine, master, changed.scenario_rows())
            silenced.append(master)
    return silenced
