from __future__ import annotations

import json
import random
import time
import traceback
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import websocket

STORED = "Trace stored. Closing the connection"
# The trace websocket protocol's close code for a frame the server could not store (its database
# was down): nothing of it was kept, so sending it again is safe (docs/traces.md).
CLOSE_SERVER_ERROR = 4011


class TraceError(Exception):
    """The server refused the trace (its "Error: ..." reply) or could not be reached."""


def new_trace_id() -> int:
    """A random positive id (the server needs a new id for each trace)."""
    return random.SystemRandom().randrange(1, 2**53)


def _connect(url: str, timeout: float):
    try:
        return websocket.create_connection(url, timeout=timeout)
    except (OSError, websocket.WebSocketException) as error:
        raise TraceError(f"cannot connect to {url}: {error}") from error


def send_trace(server_url: str, trace_id: int, messages: list, batch_size: int = 100,
               timeout: float = 10.0, connect=_connect, acks: bool = False,
               retry_for: float = 30.0) -> dict:
    """Send a whole trace (messages of the trace websocket protocol) in frames of `batch_size` and
    return the server's reply once it is stored. Raises TraceError with the server's reason
    otherwise. With `acks`, see TraceConnection."""
    connection = TraceConnection(server_url, trace_id, timeout, connect, acks, retry_for)
    try:
        for first in range(0, len(messages), batch_size):
            connection.send(messages[first:first + batch_size])
        return connection.wait_for_reply()
    finally:
        connection.close()


class TraceConnection:
    """One websocket to /ws/trace/<id>; reconnects once if the server dropped it (what was sent
    before is stored: the server continues the same trace).

    With `acks` (the server's ?ack=1) nothing is lost and nothing stored twice, whatever happens
    to the connection or the server: frames are numbered and kept until the server acknowledges
    them as stored; when the connection drops (the server restarting, a network cut) the client
    reconnects, with backoff, for up to `retry_for` seconds, and sends again every frame not
    acknowledged; the server does not store a frame twice."""

    def __init__(self, server_url: str, trace_id: int, timeout: float = 10.0, connect=_connect,
                 acks: bool = False, retry_for: float = 30.0):
        base = server_url.rstrip("/")
        if base.startswith("http"):
            base = "ws" + base[len("http"):]
        self.url = f"{base}/ws/trace/{int(trace_id)}" + ("?ack=1" if acks else "")
        self.timeout = timeout
        self.connect = connect
        self.socket: Any = None  # the connection's websocket once open
        self.acks = acks
        self.retry_for = retry_for
        self.seq = 0
        self.unacked: dict[int, str] = {}  # seq -> frame, until the server acknowledges it
        self.last_frame: str | None = None
        self.connections = 0  # opened with acks
        self.reconnects = 0  # of them after a drop

    def send(self, messages: list) -> None:
        if self.acks:
            self.seq += 1
            self.last_frame = self.unacked[self.seq] = json.dumps(
                {"seq": self.seq, "messages": messages})
            if self.socket is None:
                self._recover()
                return
            try:
                self.socket.send(self.last_frame)
            except (OSError, websocket.WebSocketException):
                self._recover()
            return
        frame = json.dumps(messages)
        for attempt in (1, 2):
            if self.socket is None:
                self.socket = self.connect(self.url, self.timeout)
            try:
                self.socket.send(frame)
                return
            except (OSError, websocket.WebSocketException) as error:
                self.close()
                if attempt == 2:
                    raise TraceError(f"cannot send to {self.url}: {error}") from error

    def _recover(self) -> None:
        """Reconnect and send again what is not acknowledged (at least the last frame, whose
        repeat brings the trace's reply again if it was lost)."""
        deadline, delay = time.monotonic() + self.retry_for, 0.05
        while True:
            self.close()
            try:
                self.socket = self.connect(self.url, self.timeout)
                self.reconnects += self.connections > 0
                self.connections += 1
                for frame in list(self.unacked.values()) or [cast(str, self.last_frame)]:
                    self.socket.send(frame)
                return
            except (TraceError, OSError, websocket.WebSocketException) as error:
                if time.monotonic() + delay > deadline:
                    self.close()
                    raise TraceError(f"cannot send to {self.url} for {self.retry_for} s: "
                                     f"{error}") from error
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)

    def _acked_reply(self) -> dict:
        while True:
            try:
                reply = json.loads(self.socket.recv())
            except (OSError, ValueError, websocket.WebSocketException):
                self._recover()
                continue
            if "ack" in reply:
                for seq in [s for s in self.unacked if s <= reply["ack"]]:
                    del self.unacked[seq]
                continue
            if self._close_code() == CLOSE_SERVER_ERROR:
                time.sleep(0.5)
                self._recover()
                continue
            return reply

    def _close_code(self) -> int | None:
        """The code of the close frame that follows the server's reply; None if none came."""
        try:
            opcode, data = self.socket.recv_data()
        except (OSError, websocket.WebSocketException):
            return None
        if opcode != websocket.ABNF.OPCODE_CLOSE or len(data) < 2:
            return None
        return int.from_bytes(data[:2], "big")

    def wait_for_reply(self) -> dict:
        if (self.last_frame if self.acks else self.socket) is None:
            raise TraceError("nothing was sent")
        if self.acks:
            if self.socket is None:
                self._recover()
            reply = self._acked_reply()
        else:
            try:
                reply = json.loads(self.socket.recv())
            except (OSError, ValueError, websocket.WebSocketException) as error:
                raise TraceError(f"no reply from {self.url}: {error}") from error
        message = reply.get("message", "")
        if message != STORED:
            raise TraceError(message.removeprefix("Error: ") if message else str(reply))
        return reply

    def close(self) -> None:
        if self.socket is not None:
            try:
                self.socket.close()
            except (OSError, websocket.WebSocketException):
                pass
            self.socket = None


@dataclass
class TraceClient:
    """Where traces go. `clock` returns timestamps (default time.time: float seconds; pass
    `lambda: int(time.time())` for whole seconds like the protocol's example clients)."""

    server_url: str
    batch_size: int = 100
    timeout: float = 10.0
    clock: Callable[[], float] = time.time
    connect: Callable = _connect
    acks: bool = False
    retry_for: float = 30.0

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")

    def trace(self, name: str | None = None, trace_id: int | None = None,
              service: str | None = None) -> Trace:
        return Trace(self, trace_id or new_trace_id(), name, service)

    def send(self, trace_id: int, messages: list) -> dict:
        return send_trace(self.server_url, trace_id, messages, self.batch_size, self.timeout,
                          self.connect, self.acks, self.retry_for)


class Trace:
    """A trace being recorded: a context manager (start on enter, finish on exit) or
    start()/finish() by hand."""

    def __init__(self, client: TraceClient, trace_id: int, name=None, service=None):
        self.client = client
        self.id = trace_id
        self.name = name
        self.service = service
        self.group_id = str(uuid.uuid4())
        self.buffer: list = []
        self.connection = TraceConnection(client.server_url, trace_id, client.timeout,
                                          client.connect, client.acks, client.retry_for)
        self.root: Span | None = None
        self.reply: dict | None = None

    def _add(self, message: dict) -> None:
        self.buffer.append(message)
        if len(self.buffer) >= self.client.batch_size:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            messages, self.buffer = self.buffer, []
            self.connection.send(messages)

    def start(self) -> Trace:
        message = {"type": "TRACE_START", "timestamp": self.client.clock(),
                   "group_id": self.group_id}
        if self.service:
            message["service"] = self.service
        self._add(message)
        if self.name:
            self.root = self.start_span(self.name)
        return self

    def start_span(self, name: str, service: str | None = None) -> Span:
        span = Span(self, name)
        message = {"type": "SPAN_START", "timestamp": self.client.clock(),
                   "group_id": span.group_id, "name": name}
        if service or self.service:
            message["service"] = service or self.service
        self._add(message)
        return span

    @contextmanager
    def span(self, name: str, service: str | None = None, attributes: dict | None = None):
        """A span around the block. An exception raised inside it is recorded as the span's
        error status with an "exception" event (OpenTelemetry's semantic conventions), and
        raised on."""
        span = self.start_span(name, service)
        if attributes:
            span.attributes.update(attributes)
        try:
            yield span
        except BaseException as error:
            span.record_exception(error)
            raise
        finally:
            span.end()

    def event(self, name: str, attributes: dict | None = None) -> None:
        message = {"type": "EVENT", "timestamp": self.client.clock(), "name": name}
        if attributes:
            message["attributes"] = attributes
        self._add(message)

    def finish(self) -> dict:
        """End the trace, send what is buffered and wait until the server stored it."""
        if self.root is not None:
            self.root.end()
        self._add({"type": "TRACE_END", "timestamp": self.client.clock(),
                   "group_id": self.group_id})
        try:
            self.flush()
            self.reply = self.connection.wait_for_reply()
            return self.reply
        finally:
            self.connection.close()

    def __enter__(self) -> Trace:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.finish()


class Span:
    def __init__(self, trace: Trace, name: str):
        self.trace = trace
        self.name = name
        self.group_id = str(uuid.uuid4())
        self.ended = False
        self.attributes: dict = {}  # sent with SPAN_END
        self.status: dict | None = None  # {"code": "ok" or "error", "message": ...}

    def set_attribute(self, key: str, value) -> None:
        self.attributes[key] = value

    def set_status(self, code: str, message: str = "") -> None:
        self.status = {"code": code, "message": message}

    def record_exception(self, error: BaseException) -> None:
        """The span failed: error status, and an "exception" event with the exception's type,
        message and stack trace."""
        message = str(error)
        self.set_status("error", f"{type(error).__name__}: {message}" if message
                        else type(error).__name__)
        self.trace.event("exception", {
            "exception.type": f"{type(error).__module__}.{type(error).__qualname__}"
            if type(error).__module__ != "builtins" else type(error).__qualname__,
            "exception.message": message,
            "exception.stacktrace": "".join(traceback.format_exception(error)),
        })

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            message = {"type": "SPAN_END", "timestamp": self.trace.client.clock(),
                       "group_id": self.group_id}
            if self.attributes:
                message["attributes"] = self.attributes
            if self.status:
                message["status"] = self.status
            self.trace._add(message)
