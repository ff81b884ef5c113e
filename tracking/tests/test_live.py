"""Live frames: sent after commit, coalesced per project, received by real sockets."""

import asyncio
import functools
import json
import threading
import time

import pytest
import websocket
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from trace_project.asgi import application
from tracking import services
from tracking.models import Project
from tracking.wire import parse_batch_event

pytestmark = [pytest.mark.integration]


def in_own_loop(coroutine_function):
    """Run an async test body on a fresh event loop in its own thread: once Playwright's sync
    API (a session fixture) has started, the main thread already has a running loop."""

    def run(*args, **kwargs):
        outcome = {}

        def target():
            async def body():
                try:
                    await coroutine_function(*args, **kwargs)
                finally:
                    # sync_to_async's worker thread keeps its own connection: close it, or
                    # PostgreSQL refuses to drop the test database at the end.
                    await sync_to_async(connections.close_all)()

            try:
                asyncio.run(body())
            except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
                outcome["error"] = error

        thread = threading.Thread(target=target)
        thread.start()
        thread.join(30)
        if "error" in outcome:
            raise outcome["error"]

    return functools.wraps(coroutine_function)(run)


def events(n):
    return [parse_batch_event({"time": time.time(), "duration_ms": 1, "path": f"/{i}",
                               "status": 200}) for i in range(n)]


@pytest.mark.django_db(transaction=True)
@in_own_loop
async def test_socket_gets_a_frame_after_ingest_commits(settings):
    settings.DASHBOARDS_PUBLIC = True
    settings.TRACKING_LIVE_MIN_INTERVAL = 0.2
    project, _ = await sync_to_async(Project.create_with_token)("Shop")
    communicator = WebsocketCommunicator(application, f"/ws/metrics/{project.public_id}/")
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "hello"
    await sync_to_async(services.ingest_events)(project, events(3))
    frame = await communicator.receive_json_from(timeout=3)
    assert frame["type"] == "requests" and frame["accepted"] == 3
    assert frame["project"] == str(project.public_id)
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@in_own_loop
async def test_socket_refuses_anonymous_and_unknown_projects(settings):
    project, _ = await sync_to_async(Project.create_with_token)("Shop")
    settings.DASHBOARDS_PUBLIC = False
    communicator = WebsocketCommunicator(application, f"/ws/metrics/{project.public_id}/")
    connected, code = await communicator.connect()
    assert not connected and code == 4003
    settings.DASHBOARDS_PUBLIC = True
    communicator = WebsocketCommunicator(
        application, "/ws/metrics/00000000-0000-0000-0000-000000000000/")
    connected, _ = await communicator.connect()
    assert not connected


@pytest.mark.django_db(transaction=True)
@in_own_loop
async def test_frames_of_one_project_are_added_up_never_lost(settings):
    """Batches inside one interval reach the page as fewer frames whose counts add up to every
    request stored; another project's page has its own interval."""
    settings.DASHBOARDS_PUBLIC = True
    settings.TRACKING_LIVE_MIN_INTERVAL = 1.0
    project, _ = await sync_to_async(Project.create_with_token)("Shop")
    other, _ = await sync_to_async(Project.create_with_token)("Other")
    sockets = []
    for each in (project, other):
        communicator = WebsocketCommunicator(application, f"/ws/metrics/{each.public_id}/")
        assert (await communicator.connect())[0]
        assert (await communicator.receive_json_from())["type"] == "hello"
        sockets.append(communicator)
    for n in range(1, 6):
        await sync_to_async(services.ingest_events)(project, events(n))
    await sync_to_async(services.ingest_events)(other, events(2))
    frames = []
    while sum(frame["accepted"] for frame in frames) < 15:
        frames.append(await sockets[0].receive_json_from(timeout=3))
    assert len(frames) < 5 and frames[0]["accepted"] == 1  # the first at once, the rest merged
    assert (await sockets[1].receive_json_from(timeout=3))["accepted"] == 2
    for communicator in sockets:
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()


def test_real_server_pushes_frames_to_a_real_websocket_client(server_factory, redis_url):
    server = server_factory(REDIS_URL=redis_url, DASHBOARDS_PUBLIC="True")
    project, token = Project.create_with_token("Shop")
    ws = websocket.create_connection(f"{server.ws_url}/ws/metrics/{project.public_id}/", timeout=10)
    assert json.loads(ws.recv())["type"] == "hello"
    import gzip

    import requests

    body = gzip.compress(json.dumps({"events": [{"time": time.time(), "duration_ms": 3,
                                                  "path": "/x", "status": 200}]}).encode())
    response = requests.post(server.url + "/api/tracking/ingest/", data=body, timeout=10,
                             headers={"Authorization": f"Bearer {token}",
                                      "Content-Encoding": "gzip"})
    assert response.status_code == 200
    frame = json.loads(ws.recv())
    assert frame == {"type": "requests", "project": str(project.public_id), "accepted": 1,
                     "newest": pytest.approx(time.time(), abs=60)}
    ws.close()
