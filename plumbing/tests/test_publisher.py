"""The live publisher with real channel layers (in-memory, and the Redis pub/sub layer when
TEST_REDIS_URL or REDIS_URL is set) and real sockets: after commit only, nothing from a
rollback, the last state per key always delivered, bursts coalesced, Redis down harmless."""

import asyncio
import datetime
import decimal
import json
import os
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.urls import path
from django.utils.translation import gettext_lazy

from plumbing import live, publisher
from plumbing.consumers import LiveConsumer
from plumbing.library_internals.channels_redis_pubsub import OUTAGE_COUNTS
from tracking.models import Project

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

GROUP = "test.publisher"


class Watcher(LiveConsumer):
    def live_groups(self):
        return [GROUP]


class Anonymous:
    is_authenticated = False


@pytest.fixture(params=["in-memory", "redis"])
def layer(request, settings):
    """The channel layer the frames travel on."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        settings.CHANNEL_LAYERS = {"default": {
            "BACKEND": "plumbing.library_internals.channels_redis_pubsub.PubSubChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": f"test-publisher-{os.getpid()}", "timeout": 2,
                       "retry": 0.25},
        }}
    else:
        settings.CHANNEL_LAYERS = {"default": {
            "BACKEND": "plumbing.library_internals.channels_memory.InMemoryChannelLayer"}}
    settings.DASHBOARDS_PUBLIC = True
    return request.param


async def watch():
    communicator = WebsocketCommunicator(URLRouter([path("ws/w/", Watcher.as_asgi())]), "/ws/w/")
    communicator.scope["user"] = Anonymous()
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def frames(communicator, until=None, timeout=2):  # noqa: ASYNC109 (per receive)
    """Frames received until `until(frame)` holds (or the first one), then nothing more."""
    received = []
    while True:
        received.append(await communicator.receive_json_from(timeout=timeout))
        if until is None or until(received[-1]):
            break
    assert await communicator.receive_nothing(timeout=0.3)
    return received


async def test_a_frame_goes_out_only_once_its_transaction_committed(layer):
    communicator = await watch()
    inside, commit = threading.Event(), threading.Event()

    def write():
        with transaction.atomic():
            Project.create_with_token("Shop")
            publisher.publish(GROUP, {"n": 1})
            inside.set()
            commit.wait(5)

    writing = asyncio.ensure_future(sync_to_async(write, thread_sensitive=False)())
    await sync_to_async(inside.wait)(5)
    assert await communicator.receive_nothing(timeout=0.3)  # published, not committed
    commit.set()
    await writing
    assert await frames(communicator) == [{"n": 1}]
    await communicator.disconnect()


def publish_in_a_failed_savepoint(frame, key):
    try:
        with transaction.atomic():
            publisher.publish(GROUP, frame, key=key)
            raise ValueError
    except ValueError:
        pass


async def test_a_rollback_sends_nothing_and_a_savepoint_rolled_back_only_its_own(layer):
    communicator = await watch()

    def write():
        with transaction.atomic():
            publisher.publish(GROUP, {"n": "rolled back"}, key="a")
            transaction.set_rollback(True)
        with transaction.atomic():
            publisher.publish(GROUP, {"n": "kept"}, key="b")
            publish_in_a_failed_savepoint({"n": "in a failed savepoint"}, key="c")
            publisher.publish(GROUP, {"n": "kept too"}, key="d")
        with transaction.atomic():
            publisher.publish(GROUP, {"n": "kept"}, key="e")
            publish_in_a_failed_savepoint({"n": "the last, in a failed savepoint"}, key="f")

    await sync_to_async(write)()
    received = []
    while len(received) < 3:
        received.append(await communicator.receive_json_from(timeout=2))
    assert await communicator.receive_nothing(timeout=0.3)
    assert received == [{"n": "kept"}, {"n": "kept too"}, {"n": "kept"}]
    await communicator.disconnect()


async def test_a_burst_in_one_transaction_sends_the_last_state_of_each_key_once(layer):
    """As a batch of reports: many changes in one transaction, one message per page holding
    the last frame of each key, in the order the keys last changed."""
    communicator = await watch()

    def batch():
        with transaction.atomic():
            for n in range(100):
                publisher.publish(GROUP, {"key": n % 3, "n": n}, key=n % 3)

    await sync_to_async(batch)()
    received = [await communicator.receive_json_from(timeout=2) for _ in range(3)]
    assert await communicator.receive_nothing(timeout=0.3)
    assert received == [{"key": 1, "n": 97}, {"key": 2, "n": 98}, {"key": 0, "n": 99}]
    await communicator.disconnect()


async def test_changes_faster_than_the_interval_coalesce_and_the_last_one_arrives(layer, settings):
    settings.LIVE_MIN_INTERVAL = 0.5
    communicator = await watch()

    def changes():
        for n in range(50):  # 50 transactions
            with transaction.atomic():
                publisher.publish(GROUP, {"n": n})

    await sync_to_async(changes)()
    received = await frames(communicator, until=lambda frame: frame["n"] == 49)
    numbers = [frame["n"] for frame in received]
    assert numbers == sorted(numbers) and len(numbers) < 50
    await communicator.disconnect()


async def test_merge_combines_the_waiting_frame_with_the_newer_one(layer, settings):
    settings.LIVE_MIN_INTERVAL = 0.5
    communicator = await watch()

    def add(waiting, newer):
        return {"added": waiting["added"] + newer["added"]}

    def changes():
        for n in range(1, 21):
            publisher.publish(GROUP, {"added": n}, merge=add)  # no transaction: at once

    await sync_to_async(changes)()
    received = []
    while sum(frame["added"] for frame in received) < 210:
        received.append(await communicator.receive_json_from(timeout=2))
    assert await communicator.receive_nothing(timeout=0.3)
    assert len(received) < 20
    await communicator.disconnect()


async def test_code_on_the_event_loop_publishes_with_apublish(layer, settings):
    """As the trace ingest consumer does after each stored batch."""
    settings.LIVE_MIN_INTERVAL = 0.5
    communicator = await watch()
    for n in range(10):
        await publisher.apublish(GROUP, {"n": n})
    received = await frames(communicator, until=lambda frame: frame["n"] == 9)
    assert len(received) <= 2 and received[0]["n"] in (0, 9)
    await communicator.disconnect()


async def test_each_frame_is_serialised_once_for_every_socket(layer, monkeypatch):
    sockets = [await watch() for _ in range(5)]
    serialised = []
    to_text = publisher._text
    monkeypatch.setattr(publisher, "_text", lambda frame: serialised.append(frame) or to_text(frame))
    await sync_to_async(publisher.publish)(GROUP, {"n": "x" * 100})
    texts = [await socket.receive_from(timeout=2) for socket in sockets]
    assert len(serialised) == 1 and len(set(texts)) == 1 and json.loads(texts[0])["n"]
    for socket in sockets:
        await socket.disconnect()


async def test_publish_many_hands_frames_over_together_after_commit_and_none_after_rollback(layer):
    """As an OTLP batch's traces are announced: outside a transaction at once, inside one at its
    commit; a rolled-back transaction sends none of them."""
    communicator = await watch()

    def write():
        publisher.publish_many([(GROUP, {"n": "outside"})])
        with transaction.atomic():
            publisher.publish_many([(GROUP, {"n": "rolled back"})])
            transaction.set_rollback(True)
        with transaction.atomic():
            publisher.publish_many([(f"{GROUP}.nobody", {"n": 0}), (GROUP, {"n": "committed"})])
            Project.create_with_token("Shop")

    await sync_to_async(write)()
    received = await frames(communicator, until=lambda frame: frame["n"] == "committed")
    assert [frame["n"] for frame in received] in (["outside", "committed"], ["committed"])
    await communicator.disconnect()


async def test_the_embedded_layer_builds_no_frame_for_a_group_nobody_is_in(settings, monkeypatch):
    """An OTLP batch publishes a frame for each of its traces, whose pages are almost never
    open: on the embedded layer, which knows every socket, those frames cost nothing. A page
    that opens later gets the frames published after its socket joined."""
    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "plumbing.library_internals.channels_memory.InMemoryChannelLayer"}}
    settings.DASHBOARDS_PUBLIC = True
    serialised = []
    to_text = publisher._text
    monkeypatch.setattr(publisher, "_text", lambda frame: serialised.append(frame) or to_text(frame))
    for n in range(5):
        await publisher.apublish(f"{GROUP}.{n}", {"n": n})
    await publisher.drain()
    assert serialised == []
    assert publisher._outbox(asyncio.get_running_loop()).groups == {}
    communicator = await watch()
    await publisher.apublish(GROUP, {"n": "watched"})
    await publisher.apublish(f"{GROUP}.0", {"n": "still nobody"})
    assert await frames(communicator) == [{"n": "watched"}]
    assert serialised == [{"n": "watched"}]
    await communicator.disconnect()


async def test_a_frame_is_json_as_django_writes_it_and_takes_what_orjson_refuses(layer):
    """publisher._text uses orjson, with Django's encoder for datetimes, decimals and lazy
    strings, and the standard library's where orjson refuses the value."""
    communicator = await watch()
    moment = datetime.datetime(2026, 12, 6, 19, 30, 1, 234567, tzinfo=datetime.UTC)
    await publisher.apublish(GROUP, {"at": moment, "cost": decimal.Decimal("1.50"),
                                     "label": gettext_lazy("Tests"), "big": 2 ** 70, 7: "seven",
                                     "name": "naïve"})
    (frame,) = await frames(communicator)
    assert frame == {"at": "2026-12-06T19:30:01.234Z", "cost": "1.50", "label": "Tests",
                     "big": 2 ** 70, "7": "seven", "name": "naïve"}
    await publisher.apublish(GROUP, {"at": moment, "n": 1})
    (frame,) = await frames(communicator)
    assert frame == {"at": "2026-12-06T19:30:01.234Z", "n": 1}
    await communicator.disconnect()


async def test_frames_sent_directly_still_reach_live_sockets(layer):
    communicator = await watch()
    await live.asend_frame(GROUP, {"direct": True})
    assert await frames(communicator) == [{"direct": True}]
    await communicator.disconnect()


async def test_with_redis_down_writes_commit_and_the_frames_are_dropped(settings):
    """A Redis that does not answer: the write commits, publish() never raises, the frames are
    counted as dropped."""
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "plumbing.library_internals.channels_redis_pubsub.PubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": f"redis://127.0.0.1:{port}/0",
                              "socket_connect_timeout": 0.5}],
                   "prefix": f"test-publisher-{os.getpid()}", "timeout": 0.5, "retry": 0.25},
    }}
    dropped = OUTAGE_COUNTS["frames_dropped"]

    def write():
        with transaction.atomic():
            project, _ = Project.create_with_token("Stored anyway")
            publisher.publish(GROUP, {"project": project.pk})
        return project.pk

    pk = await sync_to_async(write)()
    await publisher.drain()
    assert await Project.objects.filter(pk=pk).aexists()
    assert OUTAGE_COUNTS["frames_dropped"] > dropped


def test_without_an_event_loop_frames_are_sent_when_the_transaction_commits(settings, redis_url):
    """Management commands and workers have no serving loop: the committing thread sends."""
    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "plumbing.library_internals.channels_redis_pubsub.PubSubChannelLayer",
        "CONFIG": {"hosts": [redis_url], "prefix": f"test-publisher-sync-{os.getpid()}"},
    }}
    settings.DASHBOARDS_PUBLIC = True
    received = []

    async def listen(ready):
        communicator = await watch()
        ready.set()
        received.extend(await frames(communicator, until=lambda frame: frame["n"] == 2))
        await communicator.disconnect()

    ready = threading.Event()
    listener = threading.Thread(target=lambda: asyncio.run(listen(ready)))
    listener.start()
    assert ready.wait(5)
    with transaction.atomic():
        publisher.publish(GROUP, {"n": 1}, key="one")
        publisher.publish(GROUP, {"n": 2}, key="two")
    listener.join(10)
    assert received == [{"n": 1}, {"n": 2}]
