"""The background sender: the host's request threads only append a tuple to a bounded queue.

One daemon thread per process (started on first use, started again in a forked child) turns
queued tuples into JSON, gzips batches and POSTs them. It never blocks or raises into the host:
when the queue is full a request's metrics are dropped and counted (the count travels with the
next batch); when the backend is down, slow or answers 429/5xx the batch is retried with
exponential backoff (Retry-After honoured) while new requests keep being queued or dropped.
At interpreter exit what is queued is flushed within SHUTDOWN_TIMEOUT seconds.
"""

from __future__ import annotations

import atexit
import functools
import gzip
import hashlib
import http.client
import json
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from monitor_request_tracker import __version__
from monitor_request_tracker.config import TrackerConfig
from monitor_request_tracker.scrub import scrub_headers, scrub_query

logger = logging.getLogger("monitor_request_tracker")

# Order of the fields of a queued request (a plain tuple: the cheapest thing to build).
FIELDS = ("time", "duration_ns", "method", "path", "query", "view", "status", "cookie",
          "user_agent", "client_ip", "response_size", "headers")
HEADER_NAMES = ("Host", "Referer", "Content-Type", "Accept-Language")
# Captured headers pass the scrubber once, here, instead of once per request.
SAFE_HEADER_NAMES = frozenset(scrub_headers(dict.fromkeys(HEADER_NAMES, "")))
SESSION_COOKIE = "ra_session_id"  # seed 001's visitor cookie, when the app sets one
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0
GIVE_UP_STATUSES = {400, 401, 403, 404, 413}


class HttpTransport:
    """POST over one kept-alive connection (only the sender thread uses it)."""

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.path = parts.path or "/"
        self.timeout = timeout
        self._connection = None

    def post(self, body: bytes, headers: dict) -> tuple[int, float | None]:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._connection = kind(self.host, self.port, timeout=self.timeout)
        try:
            self._connection.request("POST", self.path, body, headers)
            response = self._connection.getresponse()
            response.read()
        except Exception:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, parse_retry_after(response.getheader("Retry-After"))

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


_senders: weakref.WeakSet = weakref.WeakSet()


def _after_fork_in_child():
    for sender in list(_senders):
        sender._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Sender:
    def __init__(self, config: TrackerConfig, transport=None):
        self.config = config
        self.transport = transport or HttpTransport(config.ingest_url, config.timeout)
        self._max = config.queue_size
        self._batch_size = config.batch_size
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.dropped = 0  # total since start; read by tests and the host's own monitoring
        self._dropped_reported = 0
        self.sent = 0
        self.batches_failed = 0
        self._sending = 0  # requests taken off the queue and not yet delivered or given up
        self._auth_headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Authorization": f"Bearer {config.project_token}",
            "User-Agent": f"monitor-request-tracker/{__version__}",
        }
        _senders.add(self)
        atexit.register(self.close)

    # --- host side: must stay tiny -------------------------------------------------------------

    def record(self, item: tuple) -> None:
        """Queue one request's fields (a FIELDS tuple). Never blocks; drops when full."""
        queue = self._queue
        if len(queue) >= self._max:
            self.dropped += 1
            return
        queue.append(item)
        if self._thread is None:
            self._start()
        if len(queue) >= self._batch_size:
            self._wake.set()

    def _start(self):
        with self._start_lock:
            if self._thread is not None or self._stop.is_set():
                return
            thread = threading.Thread(target=self._run, name="monitor-request-tracker",
                                      daemon=True)
            thread.start()
            self._thread = thread

    def _reset_after_fork(self):
        # The parent's thread does not exist here and its queue belongs to the parent.
        self._queue = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._thread = None
        self.dropped = self._dropped_reported = self.sent = self._sending = 0
        if hasattr(self.transport, "close"):
            self.transport.close()

    # --- sender thread ---------------------------------------------------------------------------

    def _run(self):
        while not self._stop.is_set():
            self._wake.wait(self.config.flush_interval)
            self._wake.clear()
            try:
                self._flush(deadline=None)
            except Exception:  # noqa: BLE001 - the thread must outlive any surprise
                logger.exception("request tracker: unexpected error while sending")

    def _flush(self, deadline: float | None) -> None:
        while self._queue:
            batch = []
            queue = self._queue
            while queue and len(batch) < self._batch_size:
                batch.append(queue.popleft())
            self._sending = len(batch)
            try:
                self._deliver(batch, deadline)
            finally:
                self._sending = 0
            if deadline is not None and time.monotonic() > deadline:
                return
            if self._stop.is_set() and deadline is None:
                return

    def _deliver(self, batch: list, deadline: float | None) -> None:
        dropped_now = self.dropped
        body = gzip.compress(self.serialise(batch, dropped_now - self._dropped_reported),
                             compresslevel=1)
        attempt = 0
        while True:
            try:
                status, retry_after = self.transport.post(body, self._auth_headers)
            except Exception as error:  # noqa: BLE001 - down, refused, timed out
                status, retry_after = None, None
                reason = repr(error)
            else:
                reason = f"HTTP {status}"
                if 200 <= status < 300:
                    self.sent += len(batch)
                    self._dropped_reported = dropped_now
                    return
                if status in GIVE_UP_STATUSES:
                    logger.warning("request tracker: backend refused a batch (%s); check "
                                   "PROJECT_ID, PROJECT_TOKEN and BACKEND_ENDPOINT", reason)
                    self._lose(batch)
                    return
            attempt += 1
            delay = retry_after if retry_after is not None else min(
                BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
            out_of_time = deadline is not None and time.monotonic() + delay > deadline
            if attempt > self.config.max_retries or out_of_time:
                logger.warning("request tracker: giving up a batch of %d after %d attempt(s): %s",
                               len(batch), attempt, reason)
                self._lose(batch)
                return
            if self._stop.wait(delay) and deadline is None:
                # Shutting down: close() flushes again with its own deadline.
                self._queue.extendleft(reversed(batch))
                return

    def _lose(self, batch):
        self.batches_failed += 1
        self.dropped += len(batch)

    def serialise(self, batch: list, dropped: int) -> bytes:
        # Runs for every request in the sender thread, which shares the GIL with the host's
        # request threads: repeated values (queries, visitors, header sets) are worked out once
        # and cached, and the whole batch is encoded by one json.dumps call.
        token = self.config.project_token
        events = []
        append = events.append
        for (started, duration_ns, method, path, query, view, status, cookie, user_agent,
             client_ip, response_size, header_values) in batch:
            append({
                "time": started,
                "duration_ms": duration_ns / 1e6,
                "method": method,
                "path": path,
                "query": _scrubbed_query(query) if query else "",
                "view": view or "",
                "status": status,
                "session_id": _session_id(cookie, client_ip, user_agent, int(started // 86400),
                                          token),
                "user_agent": user_agent or "",
                "client_ip": client_ip or None,
                "response_size": response_size,
                "headers": _captured_headers(header_values),
            })
        return json.dumps({"project_id": self.config.project_id, "events": events,
                           "dropped": max(0, dropped),
                           "tracker": f"monitor-request-tracker/{__version__}"},
                          separators=(",", ":")).encode()

    # --- exit --------------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Send what is queued now (for tests and short scripts); waits at most `timeout`."""
        deadline = time.monotonic() + (timeout if timeout is not None else
                                       self.config.shutdown_timeout)
        self._wake.set()
        while (self._queue or self._sending) and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        """At exit: stop the thread, then send what is left within SHUTDOWN_TIMEOUT."""
        if self._stop.is_set():
            return
        deadline = time.monotonic() + self.config.shutdown_timeout
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._queue and (thread is None or not thread.is_alive()):
            try:
                self._flush(deadline)
            except Exception:  # noqa: BLE001
                logger.exception("request tracker: flush at exit failed")
        if hasattr(self.transport, "close"):
            self.transport.close()


@functools.lru_cache(maxsize=1024)  # an app sees the same few query strings again and again
def _scrubbed_query(query: str) -> str:
    return scrub_query(query)


@functools.lru_cache(maxsize=256)
def _captured_headers(header_values: tuple) -> dict:
    """The captured headers that have a value (read-only: shared between events)."""
    return {name: value for name, value in zip(HEADER_NAMES, header_values)
            if value and name in SAFE_HEADER_NAMES}


def session_id(cookie, client_ip, user_agent, started, token) -> str:
    return _session_id(cookie, client_ip, user_agent, int(started // 86400), token)


@functools.lru_cache(maxsize=4096)  # the same visitor makes many requests a day
def _session_id(cookie, client_ip, user_agent, day, token) -> str:
    """Seed 001's visitor cookie when the app sets one; otherwise a daily visitor hash (like
    privacy-friendly analytics): the same visitor and browser give the same id for a day, and
    nothing of the cookie header leaves the host."""
    if cookie and SESSION_COOKIE in cookie:
        try:
            morsel = SimpleCookie(cookie).get(SESSION_COOKIE)
            if morsel is not None and morsel.value:
                return morsel.value[:64]
        except Exception:  # noqa: BLE001 - a malformed cookie header is the app's business
            pass
    if not client_ip and not user_agent:
        return ""
    digest = hashlib.sha256(f"{token}|{day}|{client_ip}|{user_agent}".encode())
    return digest.hexdigest()[:32]


_shared: dict = {}
_shared_lock = threading.Lock()


def get_sender(config: TrackerConfig) -> Sender:
    """One sender (one thread) per process and backend/token, however many apps use it."""
    key = (config.ingest_url, config.project_token)
    sender = _shared.get(key)
    if sender is None:
        with _shared_lock:
            sender = _shared.get(key)
            if sender is None:
                sender = _shared[key] = Sender(config)
    return sender
