"""The three live sockets of the test-machine pages with Channels' communicator: paths, access,
frames after commit, one small frame per socket per change, the whole run when the last-run socket
opens."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction

from plumbing import publisher
from plumbing.consumers import CLOSE_FORBIDDEN
from tm_api import bodies, services
from tm_api import status as S
from tm_api.deltas import LastRunPage
from tm_api.live import LAST, RUNS, STATUS, live_group
from tm_api.models import Machine
from tm_api.tests.conftest import dry_run_payload, scenario
from trace_project.asgi import application

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Anonymous:
    is_authenticated = False


def payload(**kwargs):
    data = dry_run_payload(**kwargs)
    from tm_api.status import parse_client_timestamp

    data["timestamp"] = parse_client_timestamp(data["timestamp"])
    return data


async def dry_run(name="machine #1", timestamp="2019-01-01 10:00:00", tests=("a.py", "b.py")):
    data = payload(name=name, timestamp=timestamp,
                   scenarios=[scenario("s.py", *[("/t", t) for t in tests])])
    run = await sync_to_async(services.record_dry_run)(data["machine_name"], data["timestamp"],
                                                      data["master_scenario"])
    await publisher.drain()  # its frames are out before the test connects anything
    return run.machine_id


async def connect(path):
    communicator = WebsocketCommunicator(application, path)
    connected, code = await communicator.connect()
    assert connected, code
    return communicator


def test_group_names_come_from_one_function():
    assert live_group(STATUS) == "tm.machines.status"
    assert live_group(RUNS, 7) == "tm.machine.7.runs"
    assert live_group(LAST, "7") == "tm.machine.7.last"
    with pytest.raises(ValueError):
        live_group(LAST)


async def test_sockets_refuse_anonymous_visitors_unless_dashboards_are_public(settings):
    settings.DASHBOARDS_PUBLIC = False
    for path in ("/ws/machine/status/", "/ws/machine/1/runs/", "/ws/machine/1/last/"):
        communicator = WebsocketCommunicator(application, path)
        connected, code = await communicator.connect()
        assert connected is False and code == CLOSE_FORBIDDEN, path


async def receive_whole_run(last):
    """The last-run socket's first frame: the whole last run (so a page that (re)connects shows
    the current state)."""
    data = (await last.receive_json_from(timeout=2))["machine_data"]
    assert data["delta"] is False
    return data


async def test_the_last_run_socket_opens_with_the_whole_run(settings):
    settings.DASHBOARDS_PUBLIC = True
    machine_id = await dry_run()
    await sync_to_async(services.start_test)("machine #1", "/t", "a.py")
    await publisher.drain()
    last = await connect(f"/ws/machine/{machine_id}/last/")
    data = await receive_whole_run(last)
    expected = await sync_to_async(lambda: bodies.machine_last_data(Machine.objects.get()))()
    assert {**data, "delta": None} == {**expected, "delta": None}
    assert [t["status"] for t in data["last_master_scenario"]["scenarios"][0]["tests"]] == [
        "running", "waiting"]
    assert await last.receive_nothing(timeout=0.2)
    await last.disconnect()


async def test_one_small_frame_per_socket_per_change(settings):
    """Each change sends one frame per socket, and the last-run socket's frame holds the
    change only: the run's roll-ups and the changed tests with their scenario (a delta)."""
    settings.DASHBOARDS_PUBLIC = True
    machine_id = await dry_run()
    status = await connect("/ws/machine/status/")
    runs = await connect(f"/ws/machine/{machine_id}/runs/")
    last = await connect(f"/ws/machine/{machine_id}/last/")
    whole = await receive_whole_run(last)
    b_pk = whole["last_master_scenario"]["scenarios"][0]["tests"][1]["pk"]

    await sync_to_async(services.start_test)("machine #1", "/t", "a.py")
    frame = await status.receive_json_from(timeout=2)
    assert frame["machine_id_status"]["id"] == machine_id
    assert frame["machine_id_status"]["status"] == S.RUNNING
    frame = await runs.receive_json_from(timeout=2)
    assert frame["run_data"]["status"] == S.RUNNING and frame["run_data"]["id"]
    frame = await last.receive_json_from(timeout=2)
    data = frame["machine_data"]
    assert data["machine_name"] == "machine #1" and data["delta"] is True
    run = data["last_master_scenario"]
    assert run["tests_statistics"]["running"] == 1 and run["status"] == S.RUNNING
    assert run["version"] > whole["last_master_scenario"]["version"]
    [changed] = run["scenarios"]
    assert changed["status"] == S.RUNNING and changed["tests_statistics"]["running"] == 1
    assert [(t["file_name"], t["status"]) for t in changed["tests"]] == [("a.py", "running")]
    for communicator in (status, runs, last):
        assert await communicator.receive_nothing(timeout=0.2)

    # A start that also turns the running test unknown is still one change: one frame each.
    await sync_to_async(services.start_test)("machine #1", "/t", "b.py")
    frame = await last.receive_json_from(timeout=2)
    tests = frame["machine_data"]["last_master_scenario"]["scenarios"][0]["tests"]
    assert sorted((t["file_name"], t["status"]) for t in tests) == [
        ("a.py", "unknown"), ("b.py", "running")]
    assert next(t for t in tests if t["file_name"] == "a.py")["duration"] is not None
    assert (await runs.receive_json_from(timeout=2))["run_data"]["status"] == S.RUNNING
    assert (await status.receive_json_from(timeout=2))["machine_id_status"]["status"] == S.RUNNING
    for communicator in (status, runs, last):
        assert await communicator.receive_nothing(timeout=0.2)
        await communicator.disconnect()
    assert b_pk in [t["pk"] for t in tests]


async def test_a_frame_is_the_size_of_the_change_not_of_the_run(settings):
    settings.DASHBOARDS_PUBLIC = True
    names = [f"t{n:03d}.py" for n in range(300)]
    machine_id = await dry_run(tests=names)
    last = await connect(f"/ws/machine/{machine_id}/last/")
    whole = await last.receive_from(timeout=2)
    await sync_to_async(services.start_test)("machine #1", "/t", "t150.py")
    delta = await last.receive_from(timeout=2)
    assert len(whole) > 20_000 and len(delta) < 1_500, (len(whole), len(delta))
    assert json.loads(delta)["machine_data"]["last_master_scenario"]["scenarios"][0]["tests"][0][
        "file_name"] == "t150.py"
    await last.disconnect()


async def test_a_dry_run_pushes_too(settings):
    settings.DASHBOARDS_PUBLIC = True
    machine_id = await dry_run()
    status = await connect("/ws/machine/status/")
    runs = await connect(f"/ws/machine/{machine_id}/runs/")
    last = await connect(f"/ws/machine/{machine_id}/last/")
    await receive_whole_run(last)
    await dry_run(timestamp="2019-01-02 10:00:00", tests=("c.py",))
    frame = (await status.receive_json_from(timeout=2))["machine_id_status"]
    assert frame["status"] == S.WAITING and frame["tests_count"] == 1
    run_frame = (await runs.receive_json_from(timeout=2))["run_data"]
    # the earlier run was superseded (its waiting tests are unknown): its row changes too
    second = (await runs.receive_json_from(timeout=2))["run_data"]
    assert {run_frame["status"], second["status"]} == {S.UNKNOWN, S.WAITING}
    # the new last run, whole
    data = (await last.receive_json_from(timeout=2))["machine_data"]
    assert data["delta"] is False
    assert data["last_master_scenario"]["scenarios"][0]["tests"][0]["file_name"] == "c.py"
    for communicator in (status, runs, last):
        assert await communicator.receive_nothing(timeout=0.2)
        await communicator.disconnect()


async def test_sockets_of_other_machines_hear_nothing(settings):
    settings.DASHBOARDS_PUBLIC = True
    first = await dry_run("one")
    await dry_run("two")
    other = await connect(f"/ws/machine/{first}/last/")
    await receive_whole_run(other)
    await sync_to_async(services.start_test)("two", "/t", "a.py")
    assert await other.receive_nothing(timeout=0.3)
    await other.disconnect()


async def test_an_older_run_changing_does_not_touch_the_last_run_page(settings):
    settings.DASHBOARDS_PUBLIC = True
    machine_id = await dry_run(timestamp="2019-01-05 10:00:00", tests=("new.py",))
    # an upload of an older run (smaller client timestamp) is not the last run
    await dry_run(timestamp="2019-01-01 10:00:00", tests=("old.py",))
    last = await connect(f"/ws/machine/{machine_id}/last/")
    await receive_whole_run(last)
    runs = await connect(f"/ws/machine/{machine_id}/runs/")
    await sync_to_async(services.start_test)("machine #1", "/t", "old.py")
    assert (await runs.receive_json_from(timeout=2))["run_data"]["status"] == S.RUNNING
    assert await last.receive_nothing(timeout=0.3)
    await last.disconnect()
    await runs.disconnect()


async def test_reports_of_one_transaction_reach_each_socket_as_one_frame(settings):
    """A batch of reports in one transaction: one frame per socket, holding every change."""
    settings.DASHBOARDS_PUBLIC = True
    machine_id = await dry_run(tests=("a.py", "b.py", "c.py"))
    runs = await connect(f"/ws/machine/{machine_id}/runs/")
    last = await connect(f"/ws/machine/{machine_id}/last/")
    page = LastRunPage()
    page.apply({"machine_data": await receive_whole_run(last)})

    def batch():
        with transaction.atomic():
            for name in ("a.py", "b.py", "c.py"):
                services.start_test("machine #1", "/t", name)
                services.stop_test("machine #1", "/t", name, "passed")

    await sync_to_async(batch)()
    frame = await last.receive_json_from(timeout=2)
    assert frame["machine_data"]["delta"] is True
    assert sorted(t["file_name"] for t in frame["machine_data"]["last_master_scenario"][
        "scenarios"][0]["tests"]) == ["a.py", "b.py", "c.py"]
    assert page.apply(frame)
    assert (await runs.receive_json_from(timeout=2))["run_data"]["status"] == S.PASSED
    for communicator in (runs, last):
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
    database = await sync_to_async(lambda: bodies.machine_last_data(Machine.objects.get()))()
    assert LastRunPage.summary(page.body) == LastRunPage.summary(database)


async def test_a_rolled_back_report_sends_nothing(settings):
    settings.DASHBOARDS_PUBLIC = True
    machine_id = await dry_run()
    runs = await connect(f"/ws/machine/{machine_id}/runs/")

    def rolled_back():
        with transaction.atomic():
            services.start_test("machine #1", "/t", "a.py")
            transaction.set_rollback(True)

    await sync_to_async(rolled_back)()
    assert await runs.receive_nothing(timeout=0.3)
    await runs.disconnect()


@pytest.mark.parametrize("seed", range(3))
async def test_a_page_following_the_frames_ends_on_the_database_state(settings, seed):
    """Random reports, some frames coalesced and merged on the way: the page the frames build
    equals the database's last run."""
    import random

    settings.DASHBOARDS_PUBLIC = True
    settings.LIVE_MIN_INTERVAL = 0.05
    rng = random.Random(seed)
    names = [f"t{n}.py" for n in range(12)]
    machine_id = await dry_run(tests=names)
    last = await connect(f"/ws/machine/{machine_id}/last/")
    page = LastRunPage()
    page.apply({"machine_data": await receive_whole_run(last)})

    def reports():
        for name in names:
            services.start_test("machine #1", "/t", name)
            dice = rng.random()
            if dice < 0.05:
                services.stop_test("machine #1", "/t", name, "cancelled")
                return
            if dice < 0.85:  # else it stays running, and the next start makes it unknown
                services.stop_test("machine #1", "/t", name,
                                   rng.choice(["passed", "failed", "error", "warning"]))

    await sync_to_async(reports)()
    database = await sync_to_async(lambda: bodies.machine_last_data(Machine.objects.get()))()
    while LastRunPage.summary(page.body) != LastRunPage.summary(database):
        assert page.apply(await last.receive_json_from(timeout=2))
    assert await last.receive_nothing(timeout=0.3)
    await last.disconnect()
