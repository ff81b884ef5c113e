"""Work per report is proportional to the report: the queries of a start or stop do not grow
with the run, and read only what they change."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tm_api import services
from tm_api.status import NoMatchingTest, parse_client_timestamp
from tm_api.tests.conftest import dry_run_payload, scenario

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def dry_run(name, tests):
    payload = dry_run_payload(name=name, scenarios=[
        scenario("a.py", *[("/t", f"t{n}.py") for n in range(0, tests, 2)]),
        scenario("b.py", *[("/t", f"t{n}.py") for n in range(1, tests, 2)]),
    ])
    services.record_dry_run(name, parse_client_timestamp(payload["timestamp"]),
                            payload["master_scenario"])


def statements(call, per_round_trip=False):
    """The SQL statements `call` runs, transaction control left out (backends differ there); with
    `per_round_trip`, the statements of each query sent (on PostgreSQL a report's UPDATEs go in
    one query string)."""
    with CaptureQueriesContext(connection) as captured:
        call()
    # The tests' UPDATE starts with its VALUES on SQLite (WITH reported ... UPDATE).
    sent = [["UPDATE" if sql.startswith("WITH") else sql.split()[0]
             for sql in query["sql"].split(";\n")]
            for query in captured.captured_queries
            if not query["sql"].startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))]
    return sent if per_round_trip else [sql for query in sent for sql in query]


@pytest.mark.parametrize("tests", [4, 400])
def test_a_start_and_a_stop_read_one_row_and_write_what_they_move(tests):
    dry_run("rack", tests)
    # the test with its scenario and run (locked), then the test, its scenario and the run
    assert statements(lambda: services.start_test("rack", "/t", "t2.py")) == [
        "SELECT", "UPDATE", "UPDATE", "UPDATE"]
    assert statements(lambda: services.stop_test("rack", "/t", "t2.py", "passed")) == [
        "SELECT", "UPDATE", "UPDATE", "UPDATE"]
    if connection.vendor == "postgresql":  # the three UPDATEs in one round trip
        assert statements(lambda: services.start_test("rack", "/t", "t0.py"),
                          per_round_trip=True) == [["SELECT"], ["UPDATE", "UPDATE", "UPDATE"]]


def _prepared_lock_queries():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements "
                       "WHERE statement LIKE %s", ['%"tm_api_test"%FOR UPDATE%'])
        return cursor.fetchone()[0]


@pytest.mark.postgresql
def test_the_lock_query_is_prepared_once_per_connection_and_again_after_a_rollback():
    """Planning the five-table lock query cost PostgreSQL five times its execution: it is a
    prepared statement (plumbing/library_internals/django_compiled_query.py)."""
    dry_run("rack", 4)
    assert _prepared_lock_queries() == 0
    services.start_test("rack", "/t", "t0.py")
    services.stop_test("rack", "/t", "t0.py", "passed")
    services.start_test("rack", "/t", "t2.py")
    assert _prepared_lock_queries() == 1
    # A refused report's transaction is rolled back: psycopg forgets (deallocates) its
    # prepared statements, and the next report prepares it again.
    with pytest.raises(NoMatchingTest):
        services.stop_test("rack", "/t", "t0.py", "passed")
    assert _prepared_lock_queries() == 0
    test = services.stop_test("rack", "/t", "t2.py", "failed")
    assert (test.file_name, test.status) == ("t2.py", "failed")
    assert _prepared_lock_queries() == 1


@pytest.mark.parametrize("tests", [4, 400])
def test_a_start_while_another_test_runs_reads_the_running_ones_too(tests):
    dry_run("rack", tests)
    services.start_test("rack", "/t", "t0.py")
    # the running test is read; the running one is in the other scenario, which is read too;
    # both tests are written in one statement, then the two scenarios and the run
    assert statements(lambda: services.start_test("rack", "/t", "t1.py")) == [
        "SELECT", "SELECT", "SELECT", "UPDATE", "UPDATE", "UPDATE", "UPDATE"]
