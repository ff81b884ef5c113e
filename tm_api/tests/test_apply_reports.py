"""services.apply_reports: a batch of reports ends exactly where the same reports sent one by
one end (outcomes, tests, roll-ups, notifications), with statements that do not grow per
report, and a page following the frames ends on the database's state."""

from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from notifications.models import Notification
from tm_api import bodies, services
from tm_api import outcomes as O
from tm_api import status as S
from tm_api.deltas import LastRunPage
from tm_api.models import Machine, MasterScenario, Run, Scenario, Test
from tm_api.tests.conftest import count_statuses, scenario

pytestmark = [pytest.mark.integration]

MACHINE = "Rack-7"
# Repeated file names, and one name in two paths: a report matches by path and name.
FILES = [("/a", "x.py"), ("/a", "y.py"), ("/b", "x.py"), ("/a", "z.py")]
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def tree(scenarios):
    return {"file_path": "/s", "file_name": "master.py", "script": "",
            "scenarios": [scenario(f"s{n}.py", *[FILES[f] for f in tests])
                          for n, tests in enumerate(scenarios)]}


def report(kind, file, status=None, when=None):
    path, name = FILES[file]
    data = {"file_path": path, "file_name": name}
    if kind == services.TEST_START:
        data["timestamp_start"] = when
    else:
        data.update(status=status, timestamp_stop=when)
    return kind, data


def one_by_one(machine_name, reports):
    """What the batch endpoint did before apply_reports: each report through its own service
    function, in its own savepoint."""
    outcomes = []
    for kind, data in reports:
        try:
            if kind == services.DRY_RUN:
                run = services.record_dry_run(machine_name, data["timestamp"],
                                              data["master_scenario"])
                outcomes.append({"type": kind, "status": 201, "run": run.pk})
                continue
            if kind == services.TEST_START:
                test = services.start_test(machine_name, data["file_path"], data["file_name"],
                                           data.get("timestamp_start"))
            else:
                test = services.stop_test(machine_name, data["file_path"], data["file_name"],
                                          data["status"], data.get("timestamp_stop"))
            outcomes.append({"type": kind, "status": 202, "test": test.pk})
        except services.MachineNotFound as refusal:
            outcomes.append({"type": kind, "status": 404, "code": "machine_not_found",
                             "detail": str(refusal)})
        except services.NoMatchingTest as refusal:
            outcomes.append({"type": kind, "status": 409, "code": "no_matching_test",
                             "detail": str(refusal)})
    return outcomes


def state(outcomes):
    """The machine's runs as a person would compare them (pks replaced by places, the server's
    own clock left out), the notifications raised, and the outcomes in the same terms."""
    machine = Machine.objects.filter(name_key=MACHINE.casefold()).first()
    roll_up = ["status", "tests_statistics", "tests_count", "timestamp_start", "timestamp_stop"]
    if machine is None:
        return None, outcomes
    runs = list(Run.objects.filter(machine=machine).order_by("pk").values_list("pk", flat=True))
    place = {("run", pk): n for n, pk in enumerate(runs)}
    masters = [[clients_clock(row) for row in
                MasterScenario.objects.filter(run_id=pk).values_list(*roll_up)]
               for pk in runs]
    scenarios = [[clients_clock(row) for row in Scenario.objects.filter(
        master_scenario__run_id=pk).order_by("position").values_list(*roll_up)] for pk in runs]
    tests = []
    for n, pk in enumerate(runs):
        rows = Test.objects.filter(master_scenario__run_id=pk).order_by("position").values_list(
            "pk", "position", "status", "timestamp_start", "timestamp_stop")
        for test, position, *values in rows:
            place[("test", test)] = (n, position)
            tests.append(clients_clock((n, position, *values)))
    notifications = sorted(Notification.objects.values_list("rule", "title", "text"))
    described = [{**outcome,
                  **({"run": place[("run", outcome["run"])]} if "run" in outcome else {}),
                  **({"test": place[("test", outcome["test"])]} if "test" in outcome else {})}
                 for outcome in outcomes]
    last_run = place.get(("run", machine.last_run_id))
    return (last_run, masters, scenarios, tests, notifications), described


def clients_clock(row):
    """A dry run ends the earlier run's tests at the server's time, which differs between two
    applications of the same reports: only the machines' times are compared."""
    return tuple("server time" if isinstance(value, datetime) and value > T0 + timedelta(days=1)
                 else value for value in row)


class RolledBack(Exception):
    pass


def both_ways(reports):
    """(one by one, apply_reports) of `reports` from the same database, each rolled back."""
    results = []
    for apply in (one_by_one, services.apply_reports):
        try:
            with transaction.atomic():
                results.append(state(apply(MACHINE, reports)))
                raise RolledBack
        except RolledBack:
            pass
    return results


scenario_trees = st.lists(st.lists(st.integers(0, len(FILES) - 1), max_size=4),
                          min_size=1, max_size=3)
start_or_stop = st.one_of(
    st.tuples(st.just(services.TEST_START), st.integers(0, len(FILES) - 1)),
    st.tuples(st.just(services.TEST_STOP), st.integers(0, len(FILES) - 1),
              st.sampled_from(S.STOP_STATUSES)),
)
a_report = st.one_of(start_or_stop, st.tuples(st.just(services.DRY_RUN), scenario_trees))


def as_reports(drawn):
    reports = []
    for n, item in enumerate(drawn):
        when = T0 + timedelta(seconds=n + 1, microseconds=n)
        if item[0] == services.DRY_RUN:
            reports.append((services.DRY_RUN, {"timestamp": when,
                                               "master_scenario": tree(item[1])}))
        else:
            reports.append(report(item[0], item[1], *item[2:], when=when))
    return reports


@pytest.mark.django_db
@hypothesis_settings(max_examples=100, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])
@given(runs=st.lists(scenario_trees, max_size=3),
       reports=st.lists(st.one_of(start_or_stop, start_or_stop, start_or_stop, a_report),
                        max_size=30))
def test_a_batch_ends_where_the_reports_one_by_one_end(runs, reports):
    try:
        with transaction.atomic():
            for n, scenarios in enumerate(runs):
                services.record_dry_run(MACHINE, T0 - timedelta(days=len(runs) - n),
                                        tree(scenarios))
            # runs earlier than the last one with tests still ongoing, as after a crash
            if len(runs) > 1:
                Test.objects.filter(machine__machine_name=MACHINE, position=0).update(
                    status=S.WAITING)
                for master in MasterScenario.objects.filter(tests__position=0):
                    recount(master)
            one, batch = both_ways(as_reports(reports))
            assert batch == one
            raise RolledBack
    except RolledBack:
        pass


def recount(master):
    """Roll-ups as counted from the tests (for a state made by hand)."""
    for rolled_up, tests in [(master, master.tests.all())] + [
            (s, s.tests.all()) for s in master.scenarios.all()]:
        rolled_up.tests_statistics = count_statuses(tests.values_list("status", flat=True))
        rolled_up.status = S.roll_up(rolled_up.tests_statistics)
        rolled_up.save()


@pytest.mark.django_db
def test_refused_reports_change_nothing_and_say_why():
    reports = [report(services.TEST_START, 0, when=T0)]
    outcomes = services.apply_reports(MACHINE, reports)
    assert [o["code"] for o in outcomes] == ["machine_not_found"]
    services.record_dry_run(MACHINE, T0, tree([[0, 1]]))
    outcomes = services.apply_reports(MACHINE, [
        report(services.TEST_STOP, 0, "passed", T0), report(services.TEST_START, 3, when=T0),
        report(services.TEST_START, 0, when=T0), report(services.TEST_STOP, 0, "passed", T0)])
    assert [o["status"] for o in outcomes] == [409, 409, 202, 202]
    assert "no running test /a/x.py" in outcomes[0]["detail"]
    assert Test.objects.get(file_name="x.py").status == S.PASSED


def sql_statements(call):
    with CaptureQueriesContext(connection) as captured:
        call()
    # On PostgreSQL the writes go in one query string (services._write_all).
    return [sql.split()[0] for query in captured.captured_queries
            if not query["sql"].startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))
            for sql in query["sql"].split(";\n")]


@pytest.mark.django_db
@pytest.mark.parametrize("tests", [150, 400])  # the run goes on: no notification
def test_the_statements_of_a_batch_do_not_grow_with_its_reports(tests):
    names = [(f"/t/{n % 3}", f"test_{n}") for n in range(tests)]
    services.record_dry_run(MACHINE, T0, {
        "file_path": "/s", "file_name": "master.py", "script": "",
        "scenarios": [scenario(f"s{k}.py", *names[k::4]) for k in range(4)]})
    reports = []
    for n, (path, name) in enumerate(names[:100]):
        reports.append((services.TEST_START, {"file_path": path, "file_name": name,
                                              "timestamp_start": T0}))
        reports.append((services.TEST_STOP, {"file_path": path, "file_name": name,
                                             "status": "failed" if n == 7 else "passed",
                                             "timestamp_stop": T0}))
    statements = sql_statements(lambda: services.apply_reports(MACHINE, reports))
    # the machine; the candidate tests, their run, their scenarios (each locked, read once);
    # the tests (one UPDATE, a WITH on SQLite); the 4 scenarios (one UPDATE on PostgreSQL, one
    # each on SQLite); the run
    scenarios = 1 if connection.vendor == "postgresql" else 4
    assert [s.replace("WITH", "UPDATE") for s in statements] == [
        "SELECT", "SELECT", "SELECT", "SELECT", "UPDATE", *["UPDATE"] * scenarios, "UPDATE"]
    assert Test.objects.filter(status=S.PASSED).count() == 99
    assert MasterScenario.objects.get().tests_statistics[S.FAILED] == 1


@pytest.mark.django_db
def test_a_start_meeting_a_running_test_and_a_cancel_read_their_run_once():
    names = [("/t", f"test_{n}") for n in range(50)]
    services.record_dry_run(MACHINE, T0, tree([]) | {
        "scenarios": [scenario("s0.py", *names[:25]), scenario("s1.py", *names[25:])]})
    reports = [(services.TEST_START, {"file_path": p, "file_name": n, "timestamp_start": T0})
               for p, n in names[:40]]  # each start ends the running one as unknown
    reports.append((services.TEST_STOP, {"file_path": "/t", "file_name": "test_39",
                                         "status": "cancelled", "timestamp_stop": T0}))
    statements = sql_statements(lambda: services.apply_reports(MACHINE, reports))
    # machine, candidates, their run and scenarios, the run's ongoing tests, all its scenarios;
    # tests, 2 scenarios (one UPDATE on PostgreSQL), the run
    scenarios = 1 if connection.vendor == "postgresql" else 2
    assert [s.replace("WITH", "UPDATE") for s in statements] == (
        ["SELECT"] * 6 + ["UPDATE"] * (2 + scenarios))
    counts = MasterScenario.objects.get().tests_statistics
    assert (counts[S.UNKNOWN], counts[S.CANCELLED]) == (39, 11)


@pytest.mark.django_db(transaction=True)
async def test_a_page_following_the_frames_ends_on_the_batchs_state(settings):
    from channels.testing import WebsocketCommunicator

    from plumbing import publisher
    from trace_project.asgi import application

    settings.DASHBOARDS_PUBLIC = True
    names = [("/t", f"test_{n}") for n in range(30)]
    run = await sync_to_async(services.record_dry_run)(MACHINE, T0, tree([]) | {
        "scenarios": [scenario("s0.py", *names[:15]), scenario("s1.py", *names[15:])]})
    await publisher.drain()
    last = WebsocketCommunicator(application, f"/ws/machine/{run.machine_id}/last/")
    assert (await last.connect())[0]
    page = LastRunPage()
    assert page.apply(await last.receive_json_from(timeout=2))
    statuses = ["passed", "failed", "warning", "error"]
    for first in range(0, 30, 10):  # three batches, as a session sends them
        reports = []
        for n, (path, name) in enumerate(names[first:first + 10]):
            reports.append((services.TEST_START, {"file_path": path, "file_name": name}))
            reports.append((services.TEST_STOP, {"file_path": path, "file_name": name,
                                                 "status": statuses[n % 4]}))
        await sync_to_async(services.apply_reports)(MACHINE, reports)
    database = await sync_to_async(
        lambda: bodies.machine_last_data(Machine.objects.get()))()
    assert database["last_master_scenario"]["status"] == S.FAILED
    while LastRunPage.summary(page.body) != LastRunPage.summary(database):
        assert page.apply(await last.receive_json_from(timeout=2))
    assert await last.receive_nothing(timeout=0.3)
    await last.disconnect()


@pytest.mark.django_db
def test_a_batch_of_more_tests_than_one_statement_takes_writes_them_all():
    names = [("/t", f"test_{n}") for n in range(600)]  # SQLite: 249 tests per statement
    services.record_dry_run(MACHINE, T0, tree([]) | {"scenarios": [scenario("s.py", *names)]})
    reports = []
    for n, (path, name) in enumerate(names[:500]):
        reports.append((services.TEST_START, {"file_path": path, "file_name": name,
                                              "timestamp_start": T0 + timedelta(seconds=n)}))
        reports.append((services.TEST_STOP, {"file_path": path, "file_name": name,
                                             "status": "passed",
                                             "timestamp_stop": T0 + timedelta(seconds=n + 1)}))
    services.apply_reports(MACHINE, reports[:999])  # the last test is left running
    tests = list(Test.objects.order_by("position"))
    assert [t.status for t in tests] == [S.PASSED] * 499 + [S.RUNNING] + [S.WAITING] * 100
    assert all(t.duration == 1.0 for t in tests[:499])
    assert tests[499].timestamp_start == T0 + timedelta(seconds=499)
    assert tests[499].timestamp_stop is None
    assert MasterScenario.objects.get().tests_statistics[S.PASSED] == 499


@pytest.mark.django_db
def test_a_dry_run_writes_its_tests_at_once_in_order_and_the_batch_goes_on_from_them():
    """1,200 tests in three scenarios: on PostgreSQL one INSERT of the tests whatever their
    number (bulk_create took three, a model per test); each test in its scenario, at its
    position, with its identity and its expected time; the batch's next reports find them."""
    names = [(f"/t/{n % 2}", f"test_{n}") for n in range(1200)]
    master = {"file_path": "/s", "file_name": "master.py", "script": "",
              "scenarios": [scenario(f"s{k}.py", *names[k::3]) for k in range(3)]}
    services.record_dry_run(MACHINE, T0, master)
    services.apply_reports(MACHINE, [
        (services.TEST_START, {"file_path": "/t/0", "file_name": "test_0", "timestamp_start": T0}),
        (services.TEST_STOP, {"file_path": "/t/0", "file_name": "test_0", "status": "passed",
                              "timestamp_stop": T0 + timedelta(seconds=3)})])
    with CaptureQueriesContext(connection) as captured:
        outcomes = services.apply_reports(MACHINE, [
            (services.DRY_RUN, {"timestamp": T0 + timedelta(minutes=1),
                                "master_scenario": master}),
            (services.TEST_START, {"file_path": "/t/1", "file_name": "test_1",
                                   "timestamp_start": T0}),
            (services.TEST_STOP, {"file_path": "/t/1", "file_name": "test_1",
                                  "status": "failed", "timestamp_stop": T0})])
    assert [o["status"] for o in outcomes] == [201, 202, 202]
    inserts = [q["sql"] for q in captured.captured_queries
               if q["sql"].lstrip().startswith('INSERT INTO "tm_api_test"')]
    if connection.vendor == "postgresql":
        assert len(inserts) == 1
    run = Run.objects.get(pk=outcomes[0]["run"])
    tests = list(Test.objects.filter(master_scenario__run=run).select_related("scenario")
                 .order_by("position"))
    expected = [(k, path, name) for k in range(3) for path, name in names[k::3]]
    assert [(t.position, t.scenario.file_name, t.file_path, t.file_name) for t in tests] == [
        (position, f"s{k}.py", path, name) for position, (k, path, name) in enumerate(expected)]
    assert all(t.identity_key == O.key_of(t.file_path, t.file_name) for t in tests)
    assert all(t.machine_id == run.machine_id for t in tests)
    timed = {t.file_name: t.expected_ms for t in tests if t.expected_ms is not None}
    assert timed == {"test_0": 3000}
    by_name = {t.file_name: t.status for t in tests}
    assert by_name["test_1"] == S.FAILED
    assert sum(1 for status in by_name.values() if status == S.WAITING) == 1199
