"""Limits of websockets: connections per client (per server process), frame size of the
browser live sockets, and a token bucket of messages per connection (docs/limits.md).

Daphne does not pass a close reason to the client (django/daphne#374), so each socket closed by
a limit is first sent a text frame saying why: the trace websocket protocol's
{"message": "Error: ..."} on trace ingest sockets, {"event": "closing", "code", "detail"} on the
others. The reason is in the close message too, for ASGI servers that send it.
"""

import json
import time

from django.conf import settings

from plumbing.asgi_scope import header
from plumbing.tokens import token_digest

CLOSE_TOO_BIG = 4009  # as RFC 6455 1009 (too big), which autobahn lets only itself send
CLOSE_TOO_MANY = 4029  # as HTTP 429: too many messages, or too many connections

# Sockets of programs speaking the trace websocket protocol: they read {"message": "Error: ..."},
# and their frame size is TRACE_MAX_FRAME_BYTES, checked by the consumer (which replies an Error).
INGEST_PATH_PREFIXES = ("/ws/trace/", "/ws/bench/noop/")


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; each message takes one."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = max(burst, 1)
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class WebsocketLimits:
    """Connections per client, frame size of live sockets, messages per second per connection.

    Connections are counted per server process (N processes behind a proxy allow N times the
    limit): per client address, and per presented `Authorization` header. A connection over the
    limit is accepted and at once closed with 4029 and a frame saying why, so that the client
    can read it (daphne refuses a handshake with a bare 403 and no reason)."""

    def __init__(self, app):
        self.app = app
        self.connections = {}  # client key -> open sockets in this process

    def client_keys(self, scope) -> list[str]:
        keys = []
        client = scope.get("client")
        if client:
            keys.append(f"ip:{client[0]}")
        authorization = header(scope, b"authorization")
        if authorization:
            keys.append(f"token:{token_digest(authorization.decode('latin-1'))}")
        return keys

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        ingest = scope["path"].startswith(INGEST_PATH_PREFIXES)
        most = settings.WEBSOCKET_MAX_CONNECTIONS_PER_CLIENT
        keys = self.client_keys(scope) if most else []
        crowded = [key for key in keys if self.connections.get(key, 0) >= most]
        if crowded:
            await self.refuse(receive, send, ingest, crowded[0], most)
            return
        for key in keys:
            self.connections[key] = self.connections.get(key, 0) + 1
        try:
            await self.app(scope, *self.guard(scope, receive, send, ingest))
        finally:
            for key in keys:
                left = self.connections[key] - 1
                if left:
                    self.connections[key] = left
                else:
                    del self.connections[key]

    async def refuse(self, receive, send, ingest, key, most):
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        what = "address" if key.startswith("ip:") else "token"
        detail = (f"too many websocket connections from this {what}: at most {most} per server "
                  "process (WEBSOCKET_MAX_CONNECTIONS_PER_CLIENT)")
        await send({"type": "websocket.accept"})
        await close_with_reason(send, ingest, CLOSE_TOO_MANY, detail)

    def guard(self, scope, receive, send, ingest):
        """receive/send for the application that enforce the frame size (live sockets) and the
        message rate. A frame over either is not passed on: the socket is closed with a reason
        and the application hears a disconnect, as if the client had gone."""
        rate = settings.WEBSOCKET_MESSAGES_PER_SECOND
        bucket = TokenBucket(rate, settings.WEBSOCKET_MESSAGE_BURST) if rate > 0 else None
        max_frame = 0 if ingest else settings.WEBSOCKET_MAX_FRAME_BYTES
        closed = None  # the close code once a limit closed the socket

        async def guarded_receive():
            nonlocal closed
            if closed is not None:
                return {"type": "websocket.disconnect", "code": closed}
            message = await receive()
            if message["type"] != "websocket.receive":
                return message
            if max_frame and _frame_size(message) > max_frame:
                closed = CLOSE_TOO_BIG
                detail = (f"frame larger than {max_frame} bytes (WEBSOCKET_MAX_FRAME_BYTES); "
                          "this socket takes no frames that big")
            elif bucket is not None and not bucket.take():
                closed = CLOSE_TOO_MANY
                detail = (f"more than {rate:g} messages a second on one connection "
                          f"(WEBSOCKET_MESSAGES_PER_SECOND, bursts of "
                          f"{settings.WEBSOCKET_MESSAGE_BURST}: WEBSOCKET_MESSAGE_BURST); "
                          "frames before this one were taken, this one and later ones were not")
            else:
                return message
            await close_with_reason(send, ingest, closed, detail)
            return {"type": "websocket.disconnect", "code": closed}

        async def guarded_send(message):
            if closed is None:
                await send(message)

        return guarded_receive, guarded_send


def _frame_size(message) -> int:
    if message.get("bytes") is not None:
        return len(message["bytes"])
    text = message.get("text") or ""
    return len(text.encode("utf-8", "surrogatepass")) if not text.isascii() else len(text)


async def close_with_reason(send, ingest: bool, code: int, detail: str):
    if ingest:
        frame = {"message": f"Error: {detail}"}
    else:
        frame = {"event": "closing", "code": code, "detail": detail}
    await send({"type": "websocket.send", "text": json.dumps(frame)})
    # Close reasons are at most 123 bytes.
    reason = detail.encode()[:123].decode(errors="ignore")
    await send({"type": "websocket.close", "code": code, "reason": reason})
