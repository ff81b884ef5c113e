"""The background sender: the host's request threads only append a tuple to a bounded queue.

A request thread captures raw values (two monotonic clock readings, method, path, view name,
status, size, and a few META values as they are) and appends them as one tuple: no clock
conversion, scrubbing, dict building or JSON there. One daemon thread per process (started on
first use, started again in a forked child) turns queued tuples into scrubbed JSON events, gzips
batches and POSTs them. It never blocks or raises into the host:
when the queue is full a request's metrics are dropped and counted (the count travels with the
next batch); when the backend is down, slow or answers 429/5xx the batch is retried with
exponential backoff (Retry-After honoured) while new requests keep being queued or dropped.
Each batch carries an Idempotency-Key (uuid4 hex) that its retries reuse, so a batch the server
stored but whose answer was lost is not stored twice. A batch is given up (and its requests
counted as dropped) after MAX_RETRIES retries or MAX_BATCH_AGE seconds. Backoff state is kept
across batches: during an outage the backend sees at most one attempt per BACKOFF_MAX seconds.
At interpreter exit what is queued is flushed within SHUTDOWN_TIMEOUT seconds.
Counters: Sender.stats(), or monitor_request_tracker.stats() for every sender of the process.
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
import uuid
import weakref
from collections import deque
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from monitor_request_tracker import __version__
from monitor_request_tracker.config import TrackerConfig
from monitor_request_tracker.scrub import scrub_headers, scrub_query
from monitor_request_tracker.tracecontext import trace_fields

logger = logging.getLogger("monitor_request_tracker")

# Order of the fields of a queued request: one flat tuple of strings and numbers, the cheapest
# thing to build, and one the garbage collector stops tracking at its first pass (a nested tuple
# kept it in the collector's older generations, which made full collections more frequent).
# start_ns and end_ns are time.perf_counter_ns() readings; trace and span the request's trace
# context as it was found (tracecontext: two ints of an OpenTelemetry span, or the raw
# traceparent header and None, or two Nones); the META_KEYS values follow (None when absent),
# read from Django's request.META or the WSGI environ exactly as they are.
META_KEYS = ("QUERY_STRING", "HTTP_COOKIE", "HTTP_USER_AGENT", "REMOTE_ADDR",
             "HTTP_HOST", "HTTP_REFERER", "CONTENT_TYPE", "HTTP_ACCEPT_LANGUAGE")
FIELDS = ("start_ns", "end_ns", "trace", "span", "method", "path", "view", "status",
          "response_size", *META_KEYS)
HEADER_NAMES = ("Host", "Referer", "Content-Type", "Accept-Language")  # the last four META_KEYS
# Events of requests that look alike (same method, path, view, status, size, query, visitor and
# headers) share their JSON but for time and duration: the sender encodes that part once.
FRAGMENT_CACHE_SIZE = 1024
# Captured headers pass the scrubber once, here, instead of once per request.
SAFE_HEADER_NAMES = frozenset(scrub_headers(dict.fromkeys(HEADER_NAMES, "")))
SESSION_COOKIE = "ra_session_id"  # the legacy tracker's visitor cookie, when the app sets one
BACKOFF_BASE = 0.5
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
        self._connection: http.client.HTTPConnection | None = None

    def post(self, body: bytes, headers: dict) -> tuple[int, float | None]:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._connection = kind(self.host, self.port, timeout=self.timeout)
        connection = self._connection
        try:
            connection.request("POST", self.path, body, headers)
            response = connection.getresponse()
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


class _Batch:
    """One batch as sent: its body and idempotency key are fixed, so a retry is the same request
    (the server answers a replayed key with its first answer instead of storing twice)."""

    __slots__ = ("size", "body", "key", "dropped_total", "first_attempt", "attempts")

    def __init__(self, size: int, body: bytes, dropped_total: int):
        self.size = size
        self.body = body
        self.key = uuid.uuid4().hex
        self.dropped_total = dropped_total  # the drop count this batch reports up to
        self.first_attempt: float | None = None  # monotonic time of the first attempt
        self.attempts = 0


class Sender:
    def __init__(self, config: TrackerConfig, transport=None):
        self.config = config
        self.transport = transport or HttpTransport(config.ingest_url, config.timeout)
        self._max = config.queue_size
        self._batch_size = config.batch_size
        self._wake_at = config.batch_size - 1  # queued before an append that completes a batch
        self._auth_headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Authorization": f"Bearer {config.project_token}",
            "User-Agent": f"monitor-request-tracker/{__version__}",
        }
        self._reset_state()
        _senders.add(self)
        atexit.register(self.close)

    def _reset_state(self):
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Notified by the sender thread whenever it has handed a batch over or finished a pass,
        # for flush() to wait on instead of polling.
        self._progress = threading.Condition()
        self._start_lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # Counters (see stats()). Request threads only touch dropped_queue_full, under a lock
        # taken on the drop path alone; everything else belongs to the sender thread.
        self.dropped_queue_full = 0  # requests not queued: the queue was full
        self.dropped_given_up = 0  # requests in batches given up (retries or age exhausted, 4xx)
        self._dropped_reported = 0  # drops already told to the server
        self.sent = 0
        self.batches_sent = 0
        self.batches_failed = 0
        self.retries = 0
        self._sending = 0  # requests taken off the queue and not yet delivered or given up
        self._pending: _Batch | None = None  # a batch put back at shutdown, to retry as is
        self._failures = 0  # consecutive failed attempts, across batches; 0 when healthy
        self._not_before = 0.0  # monotonic time before which no attempt is made
        self._failing_since: float | None = None
        self._dropped_at_failure = 0
        self._drops_logged = False
        self._refusal_logged: set = set()
        self._flush_requested = False  # flush(): send a partial batch now
        self._fragments: dict = {}  # FIELDS[4:] -> the event's JSON after time, duration, trace
        self._fragments_day = None
        self.last_error = ""
        self.last_success: float | None = None

    @property
    def dropped(self) -> int:
        """Requests whose metrics were lost, whatever the reason (the total the server hears)."""
        return self.dropped_queue_full + self.dropped_given_up

    # --- host side: must stay tiny -------------------------------------------------------------

    def record(self, item: tuple) -> None:
        """Queue one request's fields (a FIELDS tuple). Never blocks; drops when full."""
        queue = self._queue
        queued = len(queue)
        if queued >= self._max:
            with self._drop_lock:
                self.dropped_queue_full += 1
            return
        queue.append(item)  # deque.append is atomic: no lock between request threads
        if self._thread is None:
            self._start()
        if queued % self._batch_size == self._wake_at:  # a full batch waits: send it now
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
        # The parent's thread does not exist here and its queue and counters are the parent's.
        self._reset_state()
        if hasattr(self.transport, "close"):
            self.transport.close()

    def stats(self) -> dict:
        """This sender's counters, for the host's own monitoring (cheap; any thread)."""
        return {
            "queued": len(self._queue),
            "queue_size": self._max,
            "in_flight": self._sending,
            "sent": self.sent,
            "dropped": self.dropped,
            "dropped_queue_full": self.dropped_queue_full,
            "dropped_given_up": self.dropped_given_up,
            "batches_sent": self.batches_sent,
            "batches_failed": self.batches_failed,
            "retries": self.retries,
            "backend_failing": self._failures > 0,
            "consecutive_failures": self._failures,
            "failing_since": self._failing_since,
            "last_error": self.last_error,
            "last_success": self.last_success,
        }

    # --- sender thread ---------------------------------------------------------------------------

    def _run(self):
        # Full batches go as soon as they are complete (record() wakes the thread); what is
        # left goes every FLUSH_INTERVAL. Sending whatever is queued at each wake-up would send
        # a trickle of tiny batches while requests keep arriving during a POST.
        interval = self.config.flush_interval
        next_flush = time.monotonic() + interval
        while not self._stop.is_set():
            self._wake.wait(max(0.0, next_flush - time.monotonic()))
            self._wake.clear()
            partial = self._flush_requested or time.monotonic() >= next_flush
            if partial:
                self._flush_requested = False
                next_flush = time.monotonic() + interval
            try:
                self._flush(deadline=None, partial=partial)
            except Exception:  # the thread must outlive any surprise
                logger.exception("request tracker: unexpected error while sending")
            finally:
                self._notify_progress()

    def _notify_progress(self):
        with self._progress:
            self._progress.notify_all()

    def _flush(self, deadline: float | None, partial: bool = True) -> None:
        smallest = 1 if partial else self._batch_size
        while self._pending is not None or len(self._queue) >= smallest:
            batch, self._pending = self._pending, None
            if batch is None:
                self._sending = 1  # before the queue looks empty: flush() waits for this
                popleft = self._queue.popleft  # only this thread takes: len() can only grow
                items = [popleft() for _ in range(min(len(self._queue), self._batch_size))]
                try:
                    batch = self._prepare(items)
                except Exception:  # a value JSON cannot hold: count, go on
                    self._sending = 0
                    self.batches_failed += 1
                    self.dropped_given_up += len(items)
                    logger.exception("request tracker: could not encode a batch of %d",
                                     len(items))
                    continue
            self._sending = batch.size
            try:
                self._deliver(batch, deadline)
            finally:
                self._sending = 0
                self._notify_progress()
            if deadline is not None and time.monotonic() > deadline:
                return
            if self._stop.is_set() and deadline is None:
                return

    def _prepare(self, items: list) -> _Batch:
        dropped_total = self.dropped
        body = gzip.compress(self.serialise(items, dropped_total - self._dropped_reported),
                             compresslevel=1)
        return _Batch(len(items), body, dropped_total)

    def _deliver(self, batch: _Batch, deadline: float | None) -> None:
        while True:
            wait = self._not_before - time.monotonic()
            if wait > 0:  # backing off, or the server's Retry-After
                if deadline is None:
                    if self._stop.wait(wait):
                        self._pending = batch  # shutting down: close() retries it in time
                        return
                elif time.monotonic() + wait > deadline:
                    self._give_up(batch, "exit deadline (SHUTDOWN_TIMEOUT) before the next "
                                  "attempt")
                    return
                else:
                    time.sleep(wait)
            now = time.monotonic()
            if batch.first_attempt is None:
                batch.first_attempt = now
            else:
                self.retries += 1
            batch.attempts += 1
            headers = {**self._auth_headers, "Idempotency-Key": batch.key}
            try:
                status, retry_after = self.transport.post(batch.body, headers)
            except Exception as error:  # noqa: BLE001 - down, refused, timed out
                retry_after = None
                reason = f"{type(error).__name__}: {error}"
            else:
                if 200 <= status < 300:
                    self._delivered(batch)
                    return
                reason = f"HTTP {status}"
                if status in GIVE_UP_STATUSES:
                    if status not in self._refusal_logged:
                        self._refusal_logged.add(status)
                        logger.warning("request tracker: backend refused a batch (%s); check "
                                       "PROJECT_ID, PROJECT_TOKEN and BACKEND_ENDPOINT", reason)
                    self.last_error = reason
                    self._give_up(batch, None)
                    return
            self._failed(reason)
            delay = self._delay(retry_after)
            now = time.monotonic()
            self._not_before = now + delay
            if batch.attempts > self.config.max_retries:
                self._give_up(batch, f"{batch.attempts} attempt(s), last: {reason}")
                return
            if now + delay - batch.first_attempt > self.config.max_batch_age:
                self._give_up(batch, f"older than MAX_BATCH_AGE after {batch.attempts} "
                              f"attempt(s), last: {reason}")
                return
            if deadline is not None and now + delay > deadline:
                self._give_up(batch, f"exit deadline (SHUTDOWN_TIMEOUT), last: {reason}")
                return

    def _delay(self, retry_after: float | None) -> float:
        """Seconds before the next attempt: the server's Retry-After (plus up to 10 % so that
        clients told the same do not come back at the same instant), else exponential backoff
        over consecutive failures with jitter; never more than BACKOFF_MAX."""
        cap = self.config.backoff_max
        if retry_after is not None:
            return min(cap, retry_after * random.uniform(1.0, 1.1))
        exponent = min(self._failures - 1, 32)
        return min(cap, BACKOFF_BASE * 2 ** exponent) * random.uniform(0.5, 1.0)

    def _failed(self, reason: str) -> None:
        self.last_error = reason
        if self._failures == 0:
            self._failing_since = time.time()
            self._dropped_at_failure = self.dropped
            self._drops_logged = False
            logger.warning("request tracker: backend unreachable or refusing (%s); retrying with "
                           "backoff; up to QUEUE_SIZE=%d requests wait, later ones are dropped "
                           "and counted", reason, self._max)
        self._failures += 1
        if not self._drops_logged and self.dropped_queue_full > self._dropped_at_failure:
            self._drops_logged = True
            logger.warning("request tracker: queue full (%d): dropping new requests' metrics "
                           "until the backend answers again", self._max)

    def _delivered(self, batch: _Batch) -> None:
        self.sent += batch.size
        self.batches_sent += 1
        self._dropped_reported = batch.dropped_total
        self.last_success = time.time()
        if self._failures:
            logger.warning("request tracker: delivery resumed after %.1f s and %d failed "
                           "attempt(s); %d request(s) dropped meanwhile",
                           self.last_success - (self._failing_since or self.last_success),
                           self._failures, self.dropped - self._dropped_at_failure)
        self._failures = 0
        self._not_before = 0.0
        self._failing_since = None
        self._refusal_logged.clear()

    def _give_up(self, batch: _Batch, why: str | None) -> None:
        if why:
            logger.warning("request tracker: giving up a batch of %d: %s", batch.size, why)
        self.batches_failed += 1
        self.dropped_given_up += batch.size

    def serialise(self, batch: list, dropped: int) -> bytes:
        # Runs for every request in the sender thread, which shares the GIL with the host's
        # request threads. Request times are monotonic readings, placed on the wall clock here
        # (the queue holds them for a second or so, minutes at most during an outage). Events
        # of alike requests share their scrubbed JSON fragment; only time and duration are
        # formatted per event.
        offset_ns = time.time_ns() - time.perf_counter_ns()
        fragments = self._fragments
        fragments_day = self._fragments_day
        events: list[str] = []
        append = events.append
        for item in batch:
            started = (item[0] + offset_ns) / 1e9
            day = int(started // 86400)
            if day != fragments_day:  # the visitor hash changes daily
                fragments.clear()
                fragments_day = self._fragments_day = day
            key = item[4:]  # the trace context is the request's own: not part of the fragment
            try:
                fragment = fragments.get(key)
            except TypeError:  # a value that cannot be hashed: encode it, do not cache it
                fragment = self._fragment(*key, day)
            if fragment is None:
                if len(fragments) >= FRAGMENT_CACHE_SIZE:
                    fragments.clear()
                fragment = fragments[key] = self._fragment(*key, day)
            trace = item[2]
            append(f'{{"time":{started!r},"duration_ms":{(item[1] - item[0]) / 1e6!r},'
                   f'{"" if trace is None else trace_fields(trace, item[3])}{fragment}')
        return (f'{{"project_id":{json.dumps(self.config.project_id)},"events":['
                f'{",".join(events)}],"dropped":{max(0, dropped)},'
                f'"tracker":"monitor-request-tracker/{__version__}"}}').encode()

    def _fragment(self, method, path, view, status, response_size, query, cookie, user_agent,
                  client_ip, *header_values_and_day) -> str:
        """The event's JSON after its time and duration (from the first key on, closing brace
        included): scrubbed here, never on the request thread."""
        *header_values, day = header_values_and_day
        return json.dumps({
            "method": method,
            "path": path,
            "query": _scrubbed_query(query) if query else "",
            "view": view or "",
            "status": status,
            "session_id": _session_id(cookie, client_ip, user_agent, day,
                                      self.config.project_token),
            "user_agent": user_agent or "",
            "client_ip": client_ip or None,
            "response_size": response_size,
            "headers": _captured_headers(tuple(header_values)),
        }, separators=(",", ":"))[1:]

    # --- exit --------------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Send what is queued now (for tests and short scripts); waits at most `timeout`."""
        deadline = time.monotonic() + (timeout if timeout is not None else
                                       self.config.shutdown_timeout)
        self._flush_requested = True
        self._wake.set()
        with self._progress:
            self._progress.wait_for(
                lambda: not (self._queue or self._sending or self._pending is not None),
                max(0.0, deadline - time.monotonic()))

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
        if ((self._queue or self._pending is not None)
                and (thread is None or not thread.is_alive())):
            try:
                self._flush(deadline)
            except Exception:
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


def request_item(path, *, method="GET", view="", status=200, response_size=None,
                 duration_ns=0, meta=None, traceparent=None, trace_id=None,
                 span_id=None) -> tuple:
    """A FIELDS tuple for Sender.record, for integrations other than the middleware (and
    tests): `meta` maps META_KEYS names to their raw values, e.g. {"QUERY_STRING": "a=1"};
    the trace context is a `traceparent` header's value, or an OpenTelemetry span's
    `trace_id` and `span_id` (ints)."""
    end = time.perf_counter_ns()
    meta = meta or {}
    trace, span = (trace_id, span_id) if trace_id is not None else (traceparent, None)
    return (end - duration_ns, end, trace, span, method, path, view, status, response_size,
            *map(meta.get, META_KEYS))


@functools.lru_cache(maxsize=4096)  # the same visitor makes many requests a day
def _session_id(cookie, client_ip, user_agent, day, token) -> str:
    """The legacy tracker's visitor cookie when the app sets one; otherwise a daily visitor hash
    (like privacy-friendly analytics): the same visitor and browser give the same id for a day, and
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


def stats() -> dict:
    """The counters of every sender in this process, summed (usually there is one): queued,
    sent, dropped (= dropped_queue_full + dropped_given_up), batches, retries, and whether the
    backend is failing now (with the last error)."""
    total: dict = {"senders": 0}
    for sender in list(_senders):
        total["senders"] += 1
        for key, value in sender.stats().items():
            if isinstance(value, bool):
                total[key] = total.get(key, False) or value
            elif isinstance(value, int):
                total[key] = total.get(key, 0) + value
            elif key == "last_error" and value:
                total[key] = value
            elif key in ("failing_since", "last_success") and value is not None:
                total[key] = value if total.get(key) is None else (
                    min if key == "failing_since" else max)(total[key], value)
    return total
