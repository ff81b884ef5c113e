"""The three things a machine reports, one function each, one transaction each.

    record_dry_run(machine_name, timestamp, master_scenario_tree) -> Run
    start_test(machine_name, file_path, file_name, timestamp=None) -> Test
    stop_test(machine_name, file_path, file_name, status, timestamp=None) -> Test

REST views, the demo machines and tests all call these. The rules (roll-up, what a start or a
stop does to the other tests) come from tm_api.status; this module applies them to rows, keeps
the stored roll-ups in step and publishes live frames after commit.

Work per report is proportional to the report: a start or stop reads the test it matches (with
its scenario and run, locked) and writes that test and the roll-ups it moves; its frames say
only what changed (tm_api.live). Only a start while another test runs, and a cancel, read the
other tests they change.
"""

from collections import defaultdict
from datetime import datetime
from typing import NamedTuple

from django.db import IntegrityError, transaction
from django.utils import timezone

from notifications import rules
from tm_api import bodies
from tm_api import status as S
from tm_api import live
from tm_api.models import Machine, MasterScenario, Run, Scenario, Test, machine_key
from tm_api.status import NoMatchingTest  # noqa: F401 - part of this module's interface


class MachineNotFound(LookupError):
    def __init__(self, machine_name):
        self.machine_name = machine_name
        super().__init__(
            f"No machine named {machine_name!r}: a machine appears with its first dry run "
            f"(POST /tm_api/dry_run/)."
        )


# --- dry run -----------------------------------------------------------------------------------

def record_dry_run(machine_name: str, timestamp: datetime, master_scenario: dict) -> Run:
    """A new run of `machine_name` with every test `waiting`, in the tree's order.

    `master_scenario` = {file_path, file_name, script, scenarios: [{..., tests: [{...}]}]}.
    The machine is created on its first run. Ongoing tests of its earlier runs become `unknown`.
    """
    now = timezone.now()
    with transaction.atomic():
        machine = _lock_or_create_machine(machine_name)
        superseded = [
            (master, _supersede(master, now))
            for master in MasterScenario.objects.select_for_update()
            .select_related("run")
            .filter(run__machine=machine, status__in=S.ONGOING)
        ]
        run = Run.objects.create(machine=machine, timestamp=timestamp)
        scenario_trees = master_scenario.get("scenarios") or []
        test_count = sum(len(scenario.get("tests") or []) for scenario in scenario_trees)
        master = MasterScenario.objects.create(
            run=run,
            **_script_fields(master_scenario),
            status=S.WAITING if test_count else S.EMPTY_ROLL_UP,
            tests_statistics={**S.empty_counts(), S.WAITING: test_count},
            tests_count=test_count,
            scenarios_count=len(scenario_trees),
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
        position = 0
        tests = []
        for scenario, tree in zip(scenarios, scenario_trees):
            for test in tree.get("tests") or []:
                tests.append(Test(scenario=scenario, master_scenario=master, machine=machine,
                                  position=position, status=S.WAITING, **_script_fields(test)))
                position += 1
        Test.objects.bulk_create(tests, batch_size=500)

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
    return run


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


def stop_test(machine_name, file_path, file_name, status, timestamp: datetime | None = None):
    """The machine's `running` test with this file ends with `status` (see status.stop)."""
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
        live.publish_run(test.machine, master, changed.scenario_rows())
    return test


# What a report reads of the test it matches, with its scenario, run and machine, as
# (model, attribute names) in the order of the lock query's columns. Scripts, which can be long,
# stay in the database.
_ROLL_UP = ["id", "status", "tests_statistics", "tests_count", "timestamp_start",
            "timestamp_stop", "file_name", "file_path"]
_MATCHED = [
    (Test, "", ["id", "status", "file_name", "timestamp_start", "timestamp_stop", "scenario_id",
                "master_scenario_id", "machine_id"]),
    (MasterScenario, "master_scenario__", [*_ROLL_UP, "scenarios_count", "last_report", "run_id"]),
    (Run, "master_scenario__run__", ["id", "timestamp", "machine_id"]),
    (Machine, "machine__", ["id", "machine_name", "last_run_id"]),
    (Scenario, "scenario__", _ROLL_UP),
]
# Placeholders the query is compiled with, replaced by each report's values.
_PARAMETERS = ("\x00name_key", "\x00file_name", "\x00file_path", "\x00status")


class _CompiledQuery:
    """The lock query of a report, compiled once per database. Django compiles a queryset each
    time it runs; for this five-table join that took ~0.9 ms of CPU per report, more than the
    rest of the report's queries together (measured with PostgreSQL)."""

    def __init__(self):
        self._compiled = {}  # database alias -> (query, sql, parameter slots, columns)

    def _compile(self, connection):
        query = (
            Test.objects.select_for_update(of=("self", "master_scenario", "scenario"))
            .select_related("master_scenario", "master_scenario__run", "machine", "scenario")
            .only(*(prefix + name for _, prefix, names in _MATCHED for name in names
                    if prefix + name != "id"))
            .filter(machine__name_key=_PARAMETERS[0], file_name=_PARAMETERS[1],
                    file_path=_PARAMETERS[2], status=_PARAMETERS[3])
            .order_by("-master_scenario_id", "position")
        )[:1].query
        compiler = query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        slots = [_PARAMETERS.index(p) if p in _PARAMETERS else None for p in params]
        columns = [column for column, _, _ in compiler.select[:compiler.col_count]]
        # Where each model's attributes are in a row.
        layout = [(model, [n for n, column in enumerate(columns)
                           if column.target.model is model], )
                  for model, _, _ in _MATCHED]
        layout = [(model, [columns[n].target.attname for n in places], places)
                  for model, places in layout]
        compiled = self._compiled[connection.alias] = (query, sql, params, slots, columns, layout)
        return compiled

    def first(self, values):
        connection = transaction.get_connection()
        compiled = self._compiled.get(connection.alias) or self._compile(connection)
        query, sql, params, slots, columns, layout = compiled
        params = [p if slot is None else values[slot] for p, slot in zip(params, slots)]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        compiler = connection.ops.compiler("SQLCompiler")(query, connection, connection.alias)
        converters = compiler.get_converters(columns)
        if converters:
            row = next(iter(compiler.apply_converters([row], converters)))
        return [model.from_db(connection.alias, names, [row[n] for n in places])
                for model, names, places in layout]


_matching_test = _CompiledQuery()


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
    verb = "start" if needed_status == S.WAITING else "stop"
    raise NoMatchingTest(
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

    @classmethod
    def of(cls, test):
        return cls(test.status, test.scenario_id, test.file_name, test.timestamp_start,
                   test.timestamp_stop)


def _tests_of(master, statuses) -> dict:
    """{test pk: _TestRow} of the run's tests in `statuses`."""
    rows = Test.objects.filter(master_scenario=master, status__in=statuses).values_list(
        "pk", "status", "scenario_id", "file_name", "timestamp_start", "timestamp_stop"
    )
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


def _apply_changes(master, changes: dict, when, rows: dict, started=None, stopped=None):
    """Write `changes` ({test pk: new status}; `rows` holds each changed test's _TestRow) and
    move the stored roll-ups of the scenarios and of the run by exactly those changes. Updates
    `master` in place; returns what changed (_Changed)."""
    if not changes:
        return _Changed([], {})
    by_update = defaultdict(list)  # (new status, stamp) -> test pks
    per_scenario = defaultdict(list)
    tests = defaultdict(list)
    for pk, new in changes.items():
        row = rows[pk]
        per_scenario[row.scenario_id].append((row.status, new))
        start, stop = row.timestamp_start, row.timestamp_stop
        if started is not None and pk == started.pk:
            stamp, start = "timestamp_start", when
        elif (stopped is not None and pk == stopped.pk) or row.status == S.RUNNING:
            stamp, stop = "timestamp_stop", when
        else:
            stamp = None
        by_update[(new, stamp)].append(pk)
        tests[row.scenario_id].append(bodies.test_row(pk, row.file_name, new, start, stop))
    for (new, stamp), pks in by_update.items():
        fields = {"status": new, **({stamp: when} if stamp else {})}
        if len(pks) == 1:
            Test.objects.filter(pk=pks[0]).update(**fields)
        else:
            Test.objects.filter(pk__in=pks).update(**fields)

    roll_up_fields = ["tests_statistics", "status", "timestamp_start", "timestamp_stop"]
    reported = started or stopped
    if reported is not None and list(per_scenario) == [reported.scenario_id]:
        scenarios = [reported.scenario]  # read and locked with the test
    else:
        scenarios = list(Scenario.objects.filter(pk__in=list(per_scenario)).order_by("position"))
    for scenario in scenarios:
        scenario.apply(per_scenario[scenario.pk], when)
        scenario.save(update_fields=roll_up_fields)
    master.apply([pair for pairs in per_scenario.values() for pair in pairs], when)
    master.last_report = timezone.now()
    master.save(update_fields=[*roll_up_fields, "last_report"])
    if master.status not in S.ONGOING:
        rules.run_finished(master)
    return _Changed(scenarios, tests)


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
