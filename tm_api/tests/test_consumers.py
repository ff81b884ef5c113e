"""The three sockets of section B with Channels' communicator: paths, access, frames after
commit, one frame per socket per change."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from trace_project.asgi import application
from trace_project.consumers import CLOSE_FORBIDDEN
from tm_api import services
from tm_api import status as S
from tm_api.live import LAST, RUNS, STATUS, live_group
from tm_api.tests.conftest import dry_run_payload, scenario

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Anonymous:
    is_authenticated = False


def payload(**kwargs):
    data = dry_run_payload(**kwargs)
    from tm_api.status import parse_client_timestamp

    data["timestamp"] = parse_client_timestamp(data["timestamp"])
    return data


@sync_to_async
def dry_run(name="machine #1", timestamp="2019-01-01 10:00:00", tests=("a.py", "b.py")):
    data = payload(name=name, timestamp=timestamp,
                   scenarios=[scenario("s.py", *[("/t", t) for t in tests])])
    run = services.record_dry_run(data["machine_name"], data["timestamp"],
                                  data["master_scenario"])
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


async def test_one_frame_per_socket_per_change(settings):
    settings.DASHBOARDS_PUBLIC = True
    machine_id = await dry_run()
    status = await connect("/ws/machine/status/")
    runs = await connect(f"/ws/machine/{machine_id}/runs/")
    last = await connect(f"/ws/machine/{machine_id}/last/")

    await sync_to_async(services.start_test)("machine #1", "/t", "a.py")
    frame = await status.receive_json_from(timeout=2)
    assert frame["machine_id_status"]["id"] == machine_id
    assert frame["machine_id_status"]["status"] == S.RUNNING
    frame = await runs.receive_json_from(timeout=2)
    assert frame["run_data"]["status"] == S.RUNNING and frame["run_data"]["id"]
    frame = await last.receive_json_from(timeout=2)
    data = frame["machine_data"]
    assert data["machine_name"] == "machine #1"
    assert data["last_master_scenario"]["tests_statistics"]["running"] == 1
    assert [t["status"] for t in data["last_master_scenario"]["scenarios"][0]["tests"]] == [
        "running", "waiting"]
    for communicator in (status, runs, last):
        assert await communicator.receive_nothing(timeout=0.2)

    # A start that also turns the running test unknown is still one change: one frame each.
    await sync_to_async(services.start_test)("machine #1", "/t", "b.py")
    frame = await last.receive_json_from(timeout=2)
    tests = frame["machine_data"]["last_master_scenario"]["scenarios"][0]["tests"]
    assert [t["status"] for t in tests] == ["unknown", "running"]
    assert (await runs.receive_json_from(timeout=2))["run_data"]["status"] == S.RUNNING
    assert (await status.receive_json_from(timeout=2))["machine_id_status"]["status"] == S.RUNNING
    for communicator in (status, runs, last):
        assert await communicator.receive_nothing(timeout=0.2)
        await communicator.disconnect()


async def test_a_dry_run_pushes_too(settings):
    settings.DASHBOARDS_PUBLIC = True
    machine_id = await dry_run()
    status = await connect("/ws/machine/status/")
    runs = await connect(f"/ws/machine/{machine_id}/runs/")
    last = await connect(f"/ws/machine/{machine_id}/last/")
    await dry_run(timestamp="2019-01-02 10:00:00", tests=("c.py",))
    frame = (await status.receive_json_from(timeout=2))["machine_id_status"]
    assert frame["status"] == S.WAITING and frame["tests_count"] == 1
    run_frame = (await runs.receive_json_from(timeout=2))["run_data"]
    # the earlier run was superseded (its waiting tests are unknown): its row changes too
    second = (await runs.receive_json_from(timeout=2))["run_data"]
    assert {run_frame["status"], second["status"]} == {S.UNKNOWN, S.WAITING}
    data = (await last.receive_json_from(timeout=2))["machine_data"]
    assert data["last_master_scenario"]["scenarios"][0]["tests"][0]["file_name"] == "c.py"
    for communicator in (status, runs, last):
        assert await communicator.receive_nothing(timeout=0.2)
        await communicator.disconnect()


async def test_sockets_of_other_machines_hear_nothing(settings):
    settings.DASHBOARDS_PUBLIC = True
    first = await dry_run("one")
    await dry_run("two")
    other = await connect(f"/ws/machine/{first}/last/")
    await sync_to_async(services.start_test)("two", "/t", "a.py")
    assert await other.receive_nothing(timeout=0.3)
    await other.disconnect()


async def test_an_older_run_changing_does_not_touch_the_last_run_page(settings):
    settings.DASHBOARDS_PUBLIC = True
    machine_id = await dry_run(timestamp="2019-01-05 10:00:00", tests=("new.py",))
    # an upload of an older run (smaller client timestamp) is not the last run
    await dry_run(timestamp="2019-01-01 10:00:00", tests=("old.py",))
    last = await connect(f"/ws/machine/{machine_id}/last/")
    runs = await connect(f"/ws/machine/{machine_id}/runs/")
    await sync_to_async(services.start_test)("machine #1", "/t", "old.py")
    assert (await runs.receive_json_from(timeout=2))["run_data"]["status"] == S.RUNNING
    assert await last.receive_nothing(timeout=0.3)
    await last.disconnect()
    await runs.disconnect()
