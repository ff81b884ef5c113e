"""The live publisher: every app's changes reach the live pages through here.

A change is published as a frame (the JSON object one websocket message carries) to a group (the
channel-layer group of a page, named by its app), under a coalescing key (what the frame is the
state of: a test, a run, a project; the group itself by default). The publisher:
- holds the frames of a transaction until it commits and drops them when it rolls back (a page
  must never show what the database lacks); a savepoint rolled back drops its own frames only;
- keeps, per group and key, only the last frame not yet sent (or merges it into the one waiting,
  when the publisher is given a `merge`), so the last state of every key always goes out and
  nothing older than it needs to;
- sends each group at most once per interval (LIVE_MIN_INTERVAL seconds, or the `interval`
  given), all of its waiting frames in one channel-layer message, never two at once, in the
  order their keys last changed. A change after a quiet spell goes out at once;
- serialises each frame to JSON once, whatever the number of sockets: LiveConsumer forwards the
  text as it is;
- never raises into the write that published: with Redis down the frames are dropped (and
  counted, see plumbing.library_internals.channels_redis_pubsub); pages catch up when their
  socket reopens.

Sync code (services, inside or outside a transaction):

    publish(group, frame, key=None, merge=None, interval=None, using=None)
    publish_many([(group, frame), ...], using=None)  # one hand-off for many frames

Async code on the server's event loop, for data already committed (the trace ingest consumer,
after its worker thread stored a batch):

    await apublish(group, frame, key=None, merge=None, interval=None)

It only queues the frame on the loop's outbox and returns: it never waits for Redis. The trace
ingest consumer calls `await apublish(trace_group(trace_id), result.live_frame)` after each
stored batch: the trace page gets at most one frame per interval and always the last one.

`merge(waiting, newer) -> frame` combines two frames of one key when the newer one alone would
lose something (a delta of other tests, a count to add); without it the newer frame replaces.

Where the frames go: the event loop that serves the sockets. Code running on it, and threads of
asgiref's sync_to_async, find it themselves; a thread of another pool says it with serve_on(loop).
With no loop at all (management commands, the notification worker, plain tests) a transaction's
frames are sent when it commits, from the committing thread.
"""

import asyncio
import json
import logging
import threading
import weakref

import orjson
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from plumbing.library_internals.asgiref_threads import calling_event_loop

logger = logging.getLogger(__name__)

FRAME_EVENT = "live.frame"

_thread = threading.local()


def serve_on(loop) -> None:
    """Frames published on this thread go to `loop` (None: find it as usual)."""
    _thread.loop = loop


def publish(group: str, frame: dict, key=None, merge=None, interval=None, using=None) -> None:
    """Publish `frame` to `group` once the current transaction commits (at once outside one)."""
    _publish_items([_item(group, frame, key, merge, interval)], using)


def publish_many(frames, using=None) -> None:
    """publish(group, frame) for each (group, frame) of `frames`, handed to the event loop
    together (one wake-up of the loop, not one per frame)."""
    _publish_items([_item(group, frame, None, None, None) for group, frame in frames], using)


def _publish_items(items, using) -> None:
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        if items:
            _hand_off(items)
        return
    batch = getattr(connection, "_live_batch", None)
    if batch is None:
        batch = connection._live_batch = _Batch()
    for item in items:
        batch.add(item, connection)


async def apublish(group: str, frame: dict, key=None, merge=None, interval=None) -> None:
    """Publish `frame`, already committed, from code on the event loop: queued, never waits."""
    _outbox(asyncio.get_running_loop()).add([_item(group, frame, key, merge, interval)])


def _item(group, frame, key, merge, interval):
    return (group, group if key is None else key, frame, merge,
            settings.LIVE_MIN_INTERVAL if interval is None else interval)


# --- frames of a transaction ---------------------------------------------------------------------
#
# Each frame waits in an on_commit callback of its own (a _Marker), so Django's own bookkeeping
# drops the frames of a savepoint or transaction that rolls back. Dropped callbacks are freed at
# once (CPython counts references), which the batch sees through weak references: when a marker
# runs at commit and no marker after it is still alive, it is the transaction's last surviving
# frame, and the whole transaction's frames are handed to the event loop together, where frames
# of one key coalesce.

class _Marker:
    __slots__ = ("item", "batch", "index", "__weakref__")

    def __init__(self, item, batch, index):
        self.item, self.batch, self.index = item, batch, index

    def __call__(self):
        try:
            self.batch.committed(self)
        except Exception:  # the transaction is committed; only a frame is lost
            logger.exception("live frame not handed over")


class _Batch:
    def __init__(self):
        self.markers = []  # weak references, in the order the frames were published
        self.ready = []  # items of markers that ran (committed)

    def add(self, item, connection) -> None:
        if self.markers and self.markers[-1]() is None:
            # The last marker is gone without running: its savepoint or transaction rolled back
            # (or a commit hook before it raised, after which Django runs no more hooks: the
            # frames that did run were committed all the same).
            if self.ready:
                items, self.ready = self.ready, []
                _hand_off(items)
            self._prune()
        marker = _Marker(item, self, len(self.markers))
        self.markers.append(weakref.ref(marker))
        connection.on_commit(marker)

    def _prune(self):
        alive = [ref() for ref in self.markers]
        alive = [marker for marker in alive if marker is not None]
        self.markers = []
        for marker in alive:
            marker.index = len(self.markers)
            self.markers.append(weakref.ref(marker))

    def committed(self, marker) -> None:
        self.ready.append(marker.item)
        for ref in reversed(self.markers[marker.index + 1:]):
            if ref() is not None:
                return  # a later frame of this commit is still to come
        items, self.ready, self.markers = self.ready, [], []
        _hand_off(items)


# --- to the event loop -----------------------------------------------------------------------

def _serving_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    candidates = [getattr(_thread, "loop", None), calling_event_loop()]
    for loop in candidates:
        if loop is not None and loop.is_running() and not loop.is_closed():
            return loop
    return None


def _hand_off(items) -> None:
    loop = _serving_loop()
    if loop is not None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            _outbox(loop).add(items)
            return
        try:
            loop.call_soon_threadsafe(_add_on_loop, loop, items)
            return
        except RuntimeError:  # closed meanwhile
            pass
    try:
        async_to_sync(_send_now)(items)
    except Exception:  # a live view must never break a write
        logger.warning("live frames not sent", exc_info=True)


def _add_on_loop(loop, items):
    _outbox(loop).add(items)


async def _send_now(items):
    """Without a serving loop: coalesce what was handed over and send it at once."""
    groups = {}
    for group, key, frame, merge, _ in items:
        waiting = groups.setdefault(group, {})
        older = waiting.pop(key, None)
        waiting[key] = frame if older is None or merge is None else merge(older, frame)
    await _send_groups([(group, [_text(frame) for frame in frames.values()])
                        for group, frames in groups.items()])


def _text(frame) -> str:
    """A frame's JSON text: orjson's (a tenth of the standard library's time, on the event loop
    that serves every socket), Django's encoder for what orjson leaves to it (datetimes, in
    Django's format; decimals; lazy strings) and for what orjson refuses (integers past 64 bits,
    nesting past 254 levels)."""
    try:
        return orjson.dumps(frame, default=_django_default, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(frame, cls=DjangoJSONEncoder, separators=(",", ":"))


_django_default = DjangoJSONEncoder().default
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


async def _send_groups(batches) -> None:
    """[(group, texts)]: one channel-layer message per group, in one round trip when the layer
    can (plumbing.library_internals.channels_redis_pubsub.PubSubChannelLayer.group_send_many)."""
    layer = get_channel_layer()
    messages = [(group, {"type": FRAME_EVENT, "texts": texts}) for group, texts in batches]
    try:
        if hasattr(layer, "group_send_many"):
            await layer.group_send_many(messages)
            return
    except Exception:  # a live view must never break a write
        logger.warning("live frames to %d groups not sent", len(messages), exc_info=True)
        return
    for group, message in messages:
        try:
            await layer.group_send(group, message)
        except Exception:
            logger.warning("live frames to %s not sent", group, exc_info=True)


_outboxes = {}  # event loop -> Outbox (not weak: uvloop's loops take no weak references)


def _outbox(loop):
    outbox = _outboxes.get(loop)
    if outbox is None:
        for closed in [other for other in list(_outboxes) if other.is_closed()]:
            _outboxes.pop(closed, None)
        outbox = _outboxes[loop] = Outbox(loop)
    return outbox


class _Group:
    __slots__ = ("waiting", "merges", "interval", "last_sent", "timer", "sending")

    def __init__(self):
        self.waiting = {}  # key -> frame, in the order the keys last changed
        self.merges = {}
        self.interval = 0.0
        self.last_sent = None
        self.timer = None
        self.sending = False


class Outbox:
    """The frames of one event loop not yet sent, per group and key. Used on its loop only."""

    def __init__(self, loop):
        self.loop = loop
        self.groups = {}
        self.due = []  # (group, state, texts) to send in the next round trip

    def add(self, items) -> None:
        touched = {}
        # A layer that knows its sockets (the embedded one) says which groups nobody is in:
        # their frames are neither built nor sent. A page that opens later joins its group
        # before it reads the current state, so it misses nothing.
        listened = getattr(get_channel_layer(), "listened", None)
        for group, key, frame, merge, interval in items:
            if listened is not None and not listened(group):
                continue
            state = self.groups.get(group)
            if state is None:
                state = self.groups[group] = _Group()
            older = state.waiting.pop(key, None)
            if older is not None and merge is not None:
                frame = merge(older, frame)
            state.waiting[key] = frame
            state.interval = interval
            touched[group] = state
        for group, state in touched.items():
            self._schedule(group, state)

    def _schedule(self, group, state) -> None:
        if state.timer is not None or state.sending:
            return
        wait = 0.0 if state.last_sent is None else state.last_sent + state.interval - self.loop.time()
        if wait <= 0:
            # call_soon: frames handed over in this same turn of the loop go along.
            state.timer = self.loop.call_soon(self._flush, group)
        else:
            state.timer = self.loop.call_later(wait, self._flush, group)

    def _flush(self, group) -> None:
        state = self.groups[group]
        state.timer = None
        if not state.waiting:
            # A whole interval without a frame: the next one goes out at once.
            del self.groups[group]
            return
        frames, state.waiting = state.waiting, {}
        state.sending = True
        state.last_sent = self.loop.time()
        texts = []
        for frame in frames.values():
            try:
                texts.append(_text(frame))
            except (TypeError, ValueError):
                logger.exception("live frame to %s is not JSON", group)
        if not self.due:
            # Groups flushed in this turn of the loop (the pages of one change) go together.
            self.loop.call_soon(self._send_due)
        self.due.append((group, state, texts))

    def _send_due(self) -> None:
        due, self.due = self.due, []
        self.loop.create_task(self._send(due))

    async def _send(self, due) -> None:
        try:
            await _send_groups([(group, texts) for group, _, texts in due if texts])
        finally:
            for group, state, _ in due:
                state.sending = False
                # Also forgets the group after a quiet interval (see _flush).
                state.timer = self.loop.call_later(
                    max(0.0, state.last_sent + state.interval - self.loop.time()),
                    self._flush, group)

    async def idle(self) -> None:
        """Wait until every waiting frame of this loop was sent (tests, shutdown)."""
        # Polling, not an Event set from every send path: only tests and shutdown wait here.
        while any(state.waiting or state.sending for state in self.groups.values()):  # noqa: ASYNC110 (see above)
            await asyncio.sleep(0.01)


async def drain() -> None:
    """Wait until the frames waiting on the running loop were sent."""
    await _outbox(asyncio.get_running_loop()).idle()
