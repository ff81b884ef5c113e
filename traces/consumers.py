"""Websockets of traces: seed 000's ingestion path and the live trace page."""

import asyncio
import json
import logging
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from trace_project.consumers import LiveConsumer
from trace_project.live import asend_frame
from trace_project.workers import WorkerThreads, kept_connection
from traces.services import (
    STORED_REPLY, IngestError, ingest_frames, ingest_group, reply_for, trace_group,
)

logger = logging.getLogger(__name__)

CLOSE_STORED = 1000  # seed 000: the trace is complete and stored
CLOSE_ERROR = 4000  # seed 000: the client sent something wrong
# The server could not store the frame; nothing of it was kept: send it again later. Not 1011:
# autobahn (daphne) sends only 1000 and 3000-4999 from a server, and left such a socket open.
CLOSE_SERVER_ERROR = 4011
MAX_BATCH = 50  # queued frames of one connection stored in one transaction
MAX_TRACE_ID = 2**63 - 1  # a BIGINT primary key


# A busy client sends hundreds of frames a second; the trace page only needs to hear "changed"
# a few times a second (it refetches the trace), and always the last state.
LIVE_INTERVAL = 0.25


ingest_threads = WorkerThreads("trace-ingest", "TRACE_INGEST_THREADS")


def close_ingest_connections() -> None:
    """Close the database connection each ingest thread keeps (tests; before dropping a DB)."""
    ingest_threads.close_connections()


def _ingest_on_kept_connection(trace_id: int, frames: list, acked: bool):
    """ingest_frames on the ingest thread's own, kept database connection: channels'
    database_sync_to_async opens one per call when CONN_MAX_AGE is 0, and at hundreds of frames
    per second that costs more than the insert."""
    with kept_connection():
        return ingest_frames(trace_id, frames, publish=False, acked=acked)


def _asks_for_acks(scope) -> bool:
    """/ws/trace/<id>?ack=1: the client numbers its frames and hears {"ack": seq} once they are
    stored (docs/traces.md, "Acknowledgements")."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return query.get("ack", ["0"])[-1].lower() in ("1", "true", "yes")


class TraceIngestConsumer(AsyncWebsocketConsumer):
    """ws/trace/<id>: frames of trace messages from programs (no login, as in seed 000)."""

    async def connect(self):
        self.trace_id = int(self.scope["url_route"]["kwargs"]["trace_id"])
        self.finished = False
        self.last_live = 0.0
        self.pending_live = None  # the newest frame not yet published
        self.live_timer = None
        self.queued = []  # frames received, not yet stored
        self.storing = None  # the task storing them
        self.acks = _asks_for_acks(self.scope)
        if not 0 < self.trace_id <= MAX_TRACE_ID:
            await self.close()  # refuses the handshake, like a non-numeric id
            return
        self.groups = [ingest_group(self.trace_id)]  # left by channels on disconnect
        await self.channel_layer.group_add(self.groups[0], self.channel_name)
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
            result, refused = await sync_to_async(
                _ingest_on_kept_connection, thread_sensitive=False, executor=ingest_threads.executor
            )(self.trace_id, frames, self.acks)
        except IngestError as error:
            await self.finish(f"Error: {error}", CLOSE_ERROR)
            return
        except Exception:  # noqa: BLE001 - the client must hear that nothing was stored
            logger.exception("trace %s: frame not stored", self.trace_id)
            await self.finish(
                "Error: the server could not store this frame; nothing from it was stored, "
                "send it again later", CLOSE_SERVER_ERROR,
            )
            return
        if result is not None and result.acked is not None:
            await self.send(text_data=json.dumps({"ack": result.acked}))
        if result is not None:
            await self.publish(result.live_frame, now=result.finished)
            if result.finished:
                await asend_frame(ingest_group(self.trace_id), result.decision)
                reply = reply_for(result)
                await self.finish(reply, CLOSE_STORED if reply == STORED_REPLY else CLOSE_ERROR)
                return
        if refused is not None:
            await self.finish(f"Error: {refused}", CLOSE_ERROR)

    async def publish(self, frame: dict, now: bool = False):
        """Tell the trace page, at most every LIVE_INTERVAL, always ending with the last state.
        Called after the frame's transaction committed."""
        loop = asyncio.get_running_loop()
        self.pending_live = frame
        wait = self.last_live + LIVE_INTERVAL - loop.time()
        if now or wait <= 0:
            await self.flush_live()
        elif self.live_timer is None:
            self.live_timer = loop.call_later(wait, lambda: asyncio.ensure_future(self.flush_live()))

    async def flush_live(self):
        if self.live_timer is not None:
            self.live_timer.cancel()
            self.live_timer = None
        frame, self.pending_live = self.pending_live, None
        if frame is not None:
            self.last_live = asyncio.get_running_loop().time()
            await asend_frame(trace_group(self.trace_id), frame)

    async def disconnect(self, code):
        # Frames that arrived before the client went away are stored all the same.
        if self.storing is not None:
            try:
                await self.storing
            except Exception:  # noqa: BLE001 - logged; the socket is gone anyway
                logger.exception("trace %s: storing queued frames failed", self.trace_id)
        await self.flush_live()

    async def live_frame(self, event):
        """Another connection's frame decided this trace: answer here too, as if it were ours."""
        decision = event["data"]
        # Only this trace's decision: a channel name can come round again (the in-memory layer
        # names channels with `random`), and a message left for an old consumer must not close
        # a new one.
        if (decision.get("event") == "trace.decided" and decision.get("id") == self.trace_id
                and not self.finished and decision["reply"]):
            reply = decision["reply"]
            await self.finish(reply, CLOSE_STORED if reply == STORED_REPLY else CLOSE_ERROR)

    async def finish(self, message: str, code: int):
        self.finished = True
        await self.send(text_data=json.dumps({"message": message}))
        await self.close(code=code)


class TraceLiveConsumer(LiveConsumer):
    """ws/traces/<id>/live/: the trace page hears of every stored frame of its trace."""

    def live_groups(self):
        return [trace_group(self.scope["url_route"]["kwargs"]["trace_id"])]


class NoopTraceConsumer(AsyncWebsocketConsumer):
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
