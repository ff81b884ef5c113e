"""Websocket plumbing: origin checks, dashboard access and frames published after commit; the
server's start-up objects frozen out of the garbage collector's way."""

import json
import os
import subprocess
import sys

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.db import transaction
from django.urls import path

from plumbing.consumers import CLOSE_FORBIDDEN, LiveConsumer
from plumbing.live import publish_after_commit
from plumbing.security import allowed_hosts_origin_validator
from trace_project.asgi import application

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Echo(LiveConsumer):
    def live_groups(self):
        return ["test.echo"]


class Anonymous:
    is_authenticated = False


def echo_app():
    return allowed_hosts_origin_validator(URLRouter([path("ws/echo/", Echo.as_asgi())]))


async def connect(app, origin=None, user=None):
    headers = [(b"origin", origin.encode())] if origin else []
    communicator = WebsocketCommunicator(app, "/ws/echo/", headers=headers)
    communicator.scope["user"] = user or Anonymous()
    connected, code = await communicator.connect()
    return communicator, connected, code


async def assert_accepted(origin=None):
    communicator, connected, _ = await connect(echo_app(), origin=origin)
    assert connected is True
    await communicator.disconnect()


async def test_project_application_refuses_a_foreign_origin():
    communicator = WebsocketCommunicator(
        application, "/ws/trace/1", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert connected is False


async def test_foreign_origin_refused_own_origin_and_programs_accepted(settings):
    settings.ALLOWED_HOSTS = ["monitor.example.com"]
    settings.DASHBOARDS_PUBLIC = True
    _, connected, _ = await connect(echo_app(), origin="https://evil.example")
    assert connected is False
    await assert_accepted(origin="https://monitor.example.com")
    await assert_accepted()  # no Origin: a program, not a browser page (seed clients send none)


async def test_live_socket_refuses_anonymous_unless_dashboards_are_public(settings):
    settings.DASHBOARDS_PUBLIC = False
    communicator, connected, code = await connect(echo_app())
    assert connected is False and code == CLOSE_FORBIDDEN
    settings.DASHBOARDS_PUBLIC = True
    await assert_accepted()


async def test_frames_reach_the_socket_only_after_commit(settings):
    from asgiref.sync import sync_to_async

    settings.DASHBOARDS_PUBLIC = True
    communicator, connected, _ = await connect(echo_app())
    assert connected

    def rolled_back_then_committed():
        try:
            with transaction.atomic():
                publish_after_commit("test.echo", {"n": 1})
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        with transaction.atomic():
            publish_after_commit("test.echo", {"n": 2})

    await sync_to_async(rolled_back_then_committed)()
    assert await communicator.receive_json_from(timeout=2) == {"n": 2}
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


def test_start_up_objects_are_frozen_out_of_the_garbage_collectors_way():
    """A full collection in the server walks only what was made after start-up."""
    code = ("import gc, json, trace_project.asgi; "
            "print(json.dumps([gc.get_freeze_count(), len(gc.get_objects())]))")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "trace_project.settings"}
    result = subprocess.run([sys.executable, "-c", code], cwd=django_settings.BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    frozen, tracked = json.loads(result.stdout.splitlines()[-1])
    assert frozen > 50_000 and tracked < frozen / 10, (frozen, tracked)
