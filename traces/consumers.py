"""Websockets of traces: ingestion (the trace websocket protocol) and the live trace page."""

import asyncio
import json
import logging
import weakref
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from plumbing import publisher
from plumbing.consumers import LiveConsumer
from plumbing.live import asend_frame
from plumbing.workers import WorkerThreads, kept_connection
from traces import asyncdb, otel
from traces.live import trace_group
from traces.messages import (
    CLOSE_STORED,
    SERVER_ERROR_REPLY,
    STORED_REPLY,
    close_code,
    error_reply,
)
from traces.services import (
    IngestError,
    aingest_frames,
    ingest_frames,
    ingest_group,
    reply_for,
)

logger = logging.getLogger(__name__)

MAX_BATCH = 50  # queued frames of one connection stored in one transaction
MAX_TRACE_ID = 2**63 - 1  # a BIGINT primary key


ingest_threads = WorkerThreads("trace-ingest", "TRACE_INGEST_THREADS")


def _ingest_on_kept_connection(trace_id: int, frames: list, acked: bool):
    """ingest_frames on the ingest thread's own, kept database connection: channels'
    database_sync_to_async opens one per call when CONN_MAX_AGE is 0, and at hundreds of frames
    per second that costs more than the insert."""
    with kept_connection():
        return ingest_frames(trace_id, frames, publish=False, acked=acked)


async def store_batch(trace_id: int, frames: list, acked: bool, first: bool):
    """ingest_frames of a connection's batch: on the event loop on PostgreSQL (traces.asyncdb),
    on an ingest thread otherwise (SQLite has no async driver). `first`: the connection's first
    batch, most likely of a new trace."""
    if asyncdb.available():
        return await aingest_frames(trace_id, frames, acked, new=first)
    return await sync_to_async(
        _ingest_on_kept_connection, thread_sensitive=False, executor=ingest_threads.executor
    )(trace_id, frames, acked)


def _asks_for_acks(scope) -> bool:
    """/ws/trace/<id>?ack=1: the client numbers its frames and hears {"ack": seq} once they are
    stored (docs/traces.md, "Acknowledgements")."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return query.get("ack", ["0"])[-1].lower() in ("1", "true", "yes")


class DecisionListener:
    """One subscription per server process (per event loop) to the decisions of traces, and the
    process's open ingest connections by trace.

    A frame decides its trace on one connection; the trace's other connections hear the reply
    too. Those on this process are told directly. Those on other processes (several server
    processes share Redis) hear it through the one group every process listens on
    (services.ingest_group), and only when the trace had rows before the deciding transaction:
    a trace sent whole in one batch (as most clients do: one frame, one socket) had no other
    connection that stored anything, and costs no Redis round trip at all."""

    RENEW_AFTER = 3600.0  # seconds; the in-memory layer forgets group members after a day

    def __init__(self):
        self.open: dict[int, set] = {}  # trace id -> its ingest consumers on this loop
        self.subscribed = None  # the task subscribing (done once subscribed)
        self.channel = None
        self.receiving = None  # the task receiving decisions, kept so it is not collected
        self.since = 0.0

    async def ready(self):
        loop = asyncio.get_running_loop()
        if self.subscribed is None or loop.time() - self.since > self.RENEW_AFTER:
            self.since = loop.time()
            self.subscribed = asyncio.ensure_future(self._subscribe())
        await self.subscribed

    async def _subscribe(self):
        layer = get_channel_layer()
        if layer is None:
            return
        if self.channel is None:
            self.channel = await layer.new_channel()
            self.receiving = asyncio.ensure_future(self._receive(layer))
        await layer.group_add(ingest_group(), self.channel)

    async def _receive(self, layer):
        while True:
            if asyncio.current_task().cancelling():  # one lost inside the layer: see live.py
                raise asyncio.CancelledError
            try:
                message = await layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep listening; the layer logs outages
                logger.warning("trace decisions: receive failed", exc_info=True)
                await asyncio.sleep(1)
                continue
            decision = message.get("data")
            if isinstance(decision, dict):
                self.tell(decision)

    def join(self, consumer) -> None:
        self.open.setdefault(consumer.trace_id, set()).add(consumer)

    def leave(self, consumer) -> None:
        consumers = self.open.get(consumer.trace_id)
        if consumers is not None:
            consumers.discard(consumer)
            if not consumers:
                del self.open[consumer.trace_id]

    def tell(self, decision: dict, sender=None) -> None:
        """A trace was decided: its connections here (but the sender) reply and close."""
        if decision.get("event") != "trace.decided" or not decision.get("reply"):
            return
        for consumer in list(self.open.get(decision.get("id"), ())):
            if consumer is not sender:
                consumer.hear(decision["reply"])

    async def decided(self, sender, result) -> None:
        self.tell(result.decision, sender)
        if result.existed:
            await asend_frame(ingest_group(result.trace_id), result.decision)


_listeners = weakref.WeakKeyDictionary()  # event loop -> its DecisionListener


async def decision_listener() -> DecisionListener:
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None:
        listener = _listeners[loop] = DecisionListener()
    await listener.ready()
    return listener


class WithoutDjangoConnections:
    """A consumer that never uses Django's database connection on the event loop (its database
    work runs on ingest threads with kept connections), and has no channel of its own: without
    channels' close_old_connections() before each message (a thread hop per message) and the
    channel layer subscription per socket."""

    channel_layer_alias = None

    async def dispatch(self, message):
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message):
        await self.disconnect(message["code"])
        raise StopConsumer()


class TraceIngestConsumer(WithoutDjangoConnections, AsyncWebsocketConsumer):
    """ws/trace/<id>: frames of trace messages from programs (no login: the protocol has none)."""

    async def connect(self):
        self.trace_id = int(self.scope["url_route"]["kwargs"]["trace_id"])
        self.finished = False
        self.queued = []  # frames received, not yet stored
        self.storing = None  # the task storing them
        self.batches = 0  # stored, or tried
        self.replying = None  # the task sending another connection's decision
        self.decisions = None
        self.stored_any = False  # a batch of this connection is in the trace
        self.heard = None  # a decision heard while this connection's batch was being stored
        self.acks = _asks_for_acks(self.scope)
        if not 0 < self.trace_id <= MAX_TRACE_ID:
            await self.close()  # refuses the handshake, like a non-numeric id
            return
        self.decisions = await decision_listener()
        self.decisions.join(self)
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        if self.finished:
            return  # the reply is out and the socket is closing
        # Frames queue up while earlier ones are being stored; each batch is stored in one
        # transaction with the outcome of storing its frames one by one (see ingest_frames).
        self.queued.append(text_data if text_data is not None else bytes_data)
        if self.storing is None or self.storing.done():
            self.storing = asyncio.ensure_future(self.store_queued())

    async def store_queued(self):
        while self.queued and not self.finished:
            frames, self.queued = self.queued[:MAX_BATCH], self.queued[MAX_BATCH:]
            await self.store(frames)

    async def store(self, frames: list):
        try:
            self.batches += 1
            result, refused = await store_batch(self.trace_id, frames, self.acks,
                                                first=self.batches == 1)
        except IngestError as error:
            await self.finish(error_reply(error))
            return
        except Exception:  # the client must hear that nothing was stored
            logger.exception("trace %s: frame not stored", self.trace_id)
            if self.finished:
                return
            await self.finish(SERVER_ERROR_REPLY)
            return
        if result is not None:
            self.stored_any = True
        # The client's answer first; then the trace's other connections and its live page.
        if result is not None and not self.finished:
            if result.acked is not None:
                await self.to_client(self.send(text_data=json.dumps({"ack": result.acked})))
            if result.finished:
                await self.finish(reply_for(result))
        if refused is not None and (result is None or not result.finished):
            await self.finish(error_reply(refused))
        if self.heard is not None and result is not None:
            # The trace was decided while this batch was stored before the decision (else it
            # would have been refused): its reply is this connection's too.
            await self.finish(self.heard)
        if result is not None:
            if result.finished:
                await self.decisions.decided(self, result)
            # A busy client stores hundreds of frames a second: the publisher coalesces them
            # for the trace page (which refetches the trace) and always sends the last state.
            await publisher.apublish(trace_group(self.trace_id), result.live_frame)

    async def disconnect(self, code):
        # Frames that arrived before the client went away are stored all the same.
        if self.storing is not None:
            try:
                await self.storing
            except Exception:  # logged; the socket is gone anyway
                logger.exception("trace %s: storing queued frames failed", self.trace_id)
        if self.decisions is not None:
            self.decisions.leave(self)

    def hear(self, reply: str) -> None:
        """Another connection's frame decided this trace: answer here too, as if it were ours,
        if this connection's frames are part of the trace. A connection opened after the
        decision (the decision may reach it late, through Redis) has stored nothing of it: its
        own frames get their own answer (the trace is already stored). One whose batch is being
        stored answers once that batch is in."""
        if self.finished:
            return
        if self.storing is not None and not self.storing.done():
            self.heard = reply
        elif self.stored_any:
            self.finished = True
            self.replying = asyncio.ensure_future(self.send_reply(reply))

    async def finish(self, reply: str):
        if not self.finished:  # else the reply is out already
            self.finished = True
            await self.send_reply(reply)

    async def send_reply(self, reply: str):
        await self.to_client(self.send(text_data=json.dumps({"message": reply})))
        await self.to_client(self.close(code=close_code(reply)))

    async def to_client(self, sending) -> None:
        """Sends to this connection's client, which may have gone meanwhile (a frame it sent
        before dropping the connection is stored all the same): uvicorn then raises
        ClientDisconnected, an OSError (daphne drops the message). Nothing else must stop on
        that: the trace's other connections (a reconnected client's) still hear the decision,
        and its live page the frame."""
        try:
            await sending
        except OSError as error:
            logger.debug("trace %s: the client went away: %r", self.trace_id, error)


class TraceLiveConsumer(LiveConsumer):
    """ws/traces/<id>/live/: the trace page hears of every stored frame of its trace;
    ws/traces/<32-hex trace id>/live/: of every stored batch of an OTLP or Zipkin trace."""

    def live_groups(self):
        ref = self.scope["url_route"]["kwargs"]["trace_id"]
        return [trace_group(otel.row_id(ref.lower()) if isinstance(ref, str) else ref)]


class NoopTraceConsumer(WithoutDjangoConnections, AsyncWebsocketConsumer):
    """The benchmark's baseline: parses each frame's JSON and stores nothing.

    It replies like the real consumer once a frame holds a TRACE_END, so the benchmark measures
    the same round trip. Mounted only when TRACE_BENCH_NOOP is on."""

    async def connect(self):
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        document = json.loads(text_data if text_data is not None else bytes_data)
        if isinstance(document, dict):
            document = [document]
        if any(isinstance(m, dict) and m.get("type") == "TRACE_END" for m in document):
            await self.send(text_data=json.dumps({"message": STORED_REPLY}))
            await self.close(code=CLOSE_STORED)
