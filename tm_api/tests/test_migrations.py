"""Data migrations, run on rows written as the migration before them found them."""

from datetime import UTC, datetime

import pytest
from django.db import connection

from plumbing.tests.migrating import migrate, migrate_to_latest

pytestmark = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def latest_migrations_after():
    """The test leaves tm_api at 0003; later tests need its later migrations."""
    yield
    migrate_to_latest()


@pytest.mark.django_db(transaction=True)
def test_out_of_range_timestamps_stored_before_the_check_are_repaired():
    apps = migrate(("tm_api", "0002_master_scenario_last_report"))
    Machine, Run = apps.get_model("tm_api", "Machine"), apps.get_model("tm_api", "Run")
    Master, Test = apps.get_model("tm_api", "MasterScenario"), apps.get_model("tm_api", "Test")
    machine = Machine.objects.create(machine_name="m", name_key="m")
    bad = Run.objects.create(machine=machine, timestamp=datetime(1, 1, 2, tzinfo=UTC))
    good = Run.objects.create(machine=machine, timestamp=datetime(2024, 5, 1, tzinfo=UTC))
    master = Master.objects.create(run=bad, file_path="/", file_name="m.py",
                                   timestamp_start=datetime(9999, 1, 1, tzinfo=UTC))
    scenario = apps.get_model("tm_api", "Scenario").objects.create(
        master_scenario=master, file_path="/", file_name="s.py", position=0)
    test = Test.objects.create(master_scenario=master, scenario=scenario, machine=machine,
                               file_path="/",
                               file_name="t.py", position=0,
                               timestamp_start=datetime(2024, 5, 1, tzinfo=UTC),
                               timestamp_stop=datetime(1, 1, 2, tzinfo=UTC))
    if connection.vendor == "postgresql":
        # What the hostile report stored: a date Python cannot read back (year 0 in UTC).
        with connection.cursor() as cursor:
            cursor.execute("UPDATE tm_api_run SET timestamp = '0001-01-01 00:00:00+14' "
                           "WHERE id = %s", [bad.pk])

    apps = migrate(("tm_api", "0003_repair_out_of_range_timestamps"))
    Run, Master = apps.get_model("tm_api", "Run"), apps.get_model("tm_api", "MasterScenario")
    Test = apps.get_model("tm_api", "Test")
    repaired = Run.objects.get(pk=bad.pk)
    assert repaired.timestamp == repaired.received
    assert Run.objects.get(pk=good.pk).timestamp == datetime(2024, 5, 1, tzinfo=UTC)
    assert Master.objects.get(pk=master.pk).timestamp_start is None
    kept = Test.objects.get(pk=test.pk)
    assert (kept.timestamp_start, kept.timestamp_stop) == (
        datetime(2024, 5, 1, tzinfo=UTC), None)


@pytest.mark.django_db(transaction=True)
def test_stored_tests_get_their_identity_and_retried_results_their_flag(monkeypatch):
    """0006 backfills the identity's digest of every test (in chunks) and the retry flag of
    every result, so history and flaky tests see what was stored before it."""
    from importlib import import_module

    from tm_api.outcomes import key_of

    apps = migrate(("tm_api", "0005_test_result_trace_id"))
    Machine, Run = apps.get_model("tm_api", "Machine"), apps.get_model("tm_api", "Run")
    Master, Test = apps.get_model("tm_api", "MasterScenario"), apps.get_model("tm_api", "Test")
    Result = apps.get_model("tm_api", "TestResult")
    machine = Machine.objects.create(machine_name="m", name_key="m")
    run = Run.objects.create(machine=machine, timestamp=datetime(2024, 5, 1, tzinfo=UTC))
    master = Master.objects.create(run=run, file_path="/", file_name="m.py")
    scenario = apps.get_model("tm_api", "Scenario").objects.create(
        master_scenario=master, file_path="/", file_name="s.py", position=0)
    files = [("tests/test_api.py", "TestA::test_b[1]"), ("/vtm/tests", "01_test.py"),
             ("", "just_a_name"), ("tests/test_api.py", "TestA::test_b[1]")] * 3
    tests = [Test.objects.create(master_scenario=master, scenario=scenario, machine=machine,
                                 file_path=path, file_name=name, position=n)
             for n, (path, name) in enumerate(files)]
    Result.objects.create(test=tests[0], outcome="passed", attempts=["failed", "passed"])
    Result.objects.create(test=tests[1], outcome="failed", attempts=["failed", "failed"])
    Result.objects.create(test=tests[2], outcome="passed", attempts=[])

    # Chunks of 5: the twelve tests take three reads.
    monkeypatch.setattr(import_module("tm_api.migrations.0006_test_identity_quarantine"),
                        "CHUNK", 5)
    apps = migrate(("tm_api", "0006_test_identity_quarantine"))
    Test, Result = apps.get_model("tm_api", "Test"), apps.get_model("tm_api", "TestResult")
    for test, (path, name) in zip(tests, files):
        assert Test.objects.get(pk=test.pk).identity_key == key_of(path, name)
    assert Test.objects.filter(identity_key=key_of(*files[0])).count() == 6
    assert dict(Result.objects.values_list("test_id", "passed_on_retry")) == {
        tests[0].pk: True, tests[1].pk: False, tests[2].pk: False}
