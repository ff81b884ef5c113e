"""Limits on what one client may send: body and frame sizes, message and request rates,
websocket connections. docs/limits.md lists each with its setting and what the client gets.

- BodySizeLimit (ASGI, HTTP): a body over HTTP_MAX_BODY_BYTES is answered 413 before Django
  parses it. DRF's parsers read the request stream directly, so Django's own
  DATA_UPLOAD_MAX_MEMORY_SIZE never applied to JSON bodies, and where it did (request.body) it
  answered a bare 400.
- WebsocketLimits (ASGI, websockets): connections per client (per server process), frame size
  of the browser live sockets, and a token bucket of messages per connection.
- WriteRateThrottle (DRF): requests per second per token (or per client without one) on every
  write, in Redis when REDIS_URL is set so that all server processes share the budget.

Daphne does not pass a close reason to the client (django/daphne#374), so each socket closed by
a limit is first sent a text frame saying why: the seed's {"message": "Error: ..."} on trace
ingest sockets, {"event": "closing", "code", "detail"} on the others. The reason is in the
close message too, for ASGI servers that send it.
"""

import json
import logging
import threading
import time

from django.conf import settings
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from trace_project.errors import API_PATH_PREFIXES, error_body
from trace_project.tokens import token_digest

logger = logging.getLogger(__name__)

CLOSE_TOO_BIG = 4009  # as RFC 6455 1009 (too big), which autobahn lets only itself send
CLOSE_TOO_MANY = 4029  # as HTTP 429: too many messages, or too many connections

# Sockets of programs speaking seed 000's protocol: they read {"message": "Error: ..."}, and
# their frame size is TRACE_MAX_FRAME_BYTES, checked by the consumer (which replies an Error).
INGEST_PATH_PREFIXES = ("/ws/trace/", "/ws/bench/noop/")


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


# --- HTTP bodies --------------------------------------------------------------------------------

class BodySizeLimit:
    """413 for a request body over HTTP_MAX_BODY_BYTES, in the API's error shape.

    A Content-Length over the limit is answered before the body is read by the application; a
    body without one (chunked) is counted as it is read, and Django is told the client went
    away once it passes the limit. (Daphne has received the whole body by then, spooled to a
    temporary file: a proxy in front is what protects the network side.)"""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        limit = settings.HTTP_MAX_BODY_BYTES if scope["type"] == "http" else 0
        if not limit:
            return await self.app(scope, receive, send)
        length = _header(scope, b"content-length")
        try:
            declared = int(length) if length is not None else None
        except ValueError:
            declared = None  # Django answers a malformed Content-Length itself
        if declared is not None:
            if declared > limit:
                await self.too_large(scope, send, limit)
                return
            # The server reads no more than the declared length: nothing to count.
            return await self.app(scope, receive, send)
        received = 0
        over = False

        async def counted_receive():
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request" and not over:
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counted_receive, send)
        if over:
            await self.too_large(scope, send, limit)

    @staticmethod
    async def too_large(scope, send, limit):
        detail = (f"Request body larger than {limit} bytes (HTTP_MAX_BODY_BYTES); "
                  "send less in one request.")
        if scope["path"].startswith(API_PATH_PREFIXES):
            body, content_type = json.dumps(error_body(detail, "too_large")).encode(), b"application/json"
        else:
            body, content_type = detail.encode(), b"text/plain; charset=utf-8"
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", content_type), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": body})


# --- websockets ---------------------------------------------------------------------------------

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
        authorization = _header(scope, b"authorization")
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


# --- requests per second per token --------------------------------------------------------------

# GCRA (a token bucket kept as one number: the theoretical arrival time of the next request), in
# one atomic step in Redis so that every server process draws on the same budget.
_GCRA_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return tostring(wait) end
tat = tat + interval
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
return '0'
"""


class LocalBuckets:
    """GCRA in this process (no REDIS_URL: one server process)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.arrivals = {}

    def wait(self, key: str, interval: float, tolerance: float) -> float:
        now = time.monotonic()
        with self.lock:
            tat = max(self.arrivals.get(key, now), now)
            wait = tat - tolerance - now
            if wait > 0:
                return wait
            self.arrivals[key] = tat + interval
            if len(self.arrivals) > 100_000:  # forget clients whose bucket is full again
                self.arrivals = {k: v for k, v in self.arrivals.items() if v > now}
            return 0.0

    def clear(self):
        with self.lock:
            self.arrivals.clear()


class RedisBuckets:
    def __init__(self, url: str, prefix: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self.script = self.client.register_script(_GCRA_LUA)
        self.prefix = f"{prefix}:ratelimit:" if prefix else "ratelimit:"

    def wait(self, key: str, interval: float, tolerance: float) -> float:
        return float(self.script(keys=[self.prefix + key], args=[interval, tolerance]))


_buckets = {}
_buckets_lock = threading.Lock()


def buckets():
    """The bucket store for the current settings (tests switch REDIS_URL)."""
    url = settings.REDIS_URL
    with _buckets_lock:
        if url not in _buckets:
            prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
            _buckets[url] = RedisBuckets(url, prefix) if url else LocalBuckets()
        return _buckets[url]


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _presented_token(request) -> str | None:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() in ("token", "bearer") and secret.strip():
        return secret.strip()
    # Seed 001's client sends its project token in the JSON body. The body is parsed here only
    # where the view parses JSON anyway (DRF keeps the result for the view).
    if (request.content_type.startswith("application/json")
            and any(p.media_type == "application/json" for p in request.parsers)):
        data = request.data  # a malformed body raises the view's own 400 here
        if isinstance(data, dict) and isinstance(data.get("project_token"), str):
            return data["project_token"]
    return None


class WriteRateThrottle(BaseThrottle):
    """Requests per second on every write (POST, PUT, PATCH, DELETE) of the REST API, per
    machine token (authenticated tm_api writes), per project token (tracking ingest: the
    `Authorization` header or seed 001's body `project_token`), else per logged-in user or
    client address. Reads are not throttled. Over the budget: 429 with Retry-After.

    Runs after authentication: a request with a wrong machine token is a 401 without touching
    a bucket. A project token is looked up by the view, later: the bucket is keyed by the token
    presented (a hash of it), whatever it is."""

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS:
            return True
        scope, ident = self.identify(request)
        rate = getattr(settings, f"RATE_LIMIT_{scope.upper()}")
        if rate <= 0:
            return True
        burst = getattr(settings, f"RATE_LIMIT_{scope.upper()}_BURST")
        interval = 1.0 / rate
        try:
            wait = buckets().wait(f"{scope}:{ident}", interval, interval * (max(burst, 1) - 1))
        except Exception:  # noqa: BLE001 - Redis down: let writes through rather than fail them
            logger.warning("rate limit not checked: the bucket store failed", exc_info=True)
            return True
        if wait <= 0:
            return True
        who = {"machine_token": "this machine token", "project_token": "this project token",
               "client": "this client"}[scope]
        raise exceptions.Throttled(wait, detail=(
            f"Too many requests from {who}: more than {rate:g} a second "
            f"(RATE_LIMIT_{scope.upper()}, bursts of {burst}: RATE_LIMIT_{scope.upper()}_BURST)."
        ))

    def identify(self, request) -> tuple[str, str]:
        auth = request.auth
        if auth is not None and getattr(auth, "pk", None) is not None:
            return "machine_token", f"{type(auth).__name__}:{auth.pk}"
        token = _presented_token(request)
        if token is not None:
            return "project_token", token_digest(token)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return "client", f"user:{user.pk}"
        return "client", f"ip:{request.META.get('REMOTE_ADDR', '')}"
