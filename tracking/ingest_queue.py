"""The waiting line in front of the tracking ingest endpoints: the legacy tracker route
(`POST /tracking/<project id>`) and the batch endpoint (`POST /api/tracking/ingest/`).

The legacy tracker (rigidanalytics-tracker 2.0.5) sends one request per tracked
request, at most 20 at once, and never retries: every refusal is an event lost. So a burst
waits its turn instead of being refused. Each server process runs a few ingest requests at once
(TRACKING_INGEST_THREADS on PostgreSQL; one on SQLite, which lets one writer in at a time, so
more would only wait in SQLite's busy loop) and lets up to TRACKING_INGEST_MAX_WAITING more
wait, in arrival order, each for at most TRACKING_INGEST_MAX_WAIT_SECONDS. Only beyond that is
the answer 429 with Retry-After, which stored nothing (this project's tracker retries it).

The line is an ASGI middleware, in the event loop, in front of Django: Django runs each
request's synchronous middleware on a thread of its own, so a request waiting inside Django
would hold a thread; here it holds a coroutine, and no database connection.
"""

import asyncio
import json
import math
import time

from django.conf import settings
from django.db import connections

from plumbing.errors import error_body

# As tracking/urls.py: the legacy tracker route (no trailing slash) and the batch endpoint.
INGEST_PATH_PREFIXES = ("/tracking/", "/api/tracking/ingest/")

# Retry-After of a refusal: the time the line ahead would take to drain, within these bounds.
RETRY_AFTER_MIN_SECONDS = 1
RETRY_AFTER_MAX_SECONDS = 60


def running_at_once() -> int:
    """Ingest requests one process runs at the same time."""
    if connections["default"].vendor == "postgresql":
        return max(1, settings.TRACKING_INGEST_THREADS)
    return 1


class IngestQueue:
    """ASGI middleware: requests to INGEST_PATH_PREFIXES run at most running_at_once() at a time
    per process; the others wait for a turn, or get 429 when the line is full or the wait too
    long."""

    def __init__(self, app):
        self.app = app
        self._loop = None
        self._turns = None
        self.waiting = 0
        # Seconds one ingest request runs, smoothed over the last few dozen: the Retry-After
        # estimate (a 5,000-event batch runs far longer than a legacy tracker's event).
        self.run_seconds = 0.01

    def _turns_of_this_loop(self) -> asyncio.Semaphore:
        # An asyncio.Semaphore belongs to one event loop: daphne has one; tests run the
        # application in several, one after the other.
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._turns, self.waiting = loop, asyncio.Semaphore(running_at_once()), 0
        return self._turns

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(INGEST_PATH_PREFIXES):
            return await self.app(scope, receive, send)
        turns = self._turns_of_this_loop()
        if turns.locked():
            most = settings.TRACKING_INGEST_MAX_WAITING
            if self.waiting >= most:
                return await self.refuse(send, (
                    f"Too many ingest requests waiting in this server process: {most} "
                    "(TRACKING_INGEST_MAX_WAITING); nothing was stored, retry later."))
            patience = settings.TRACKING_INGEST_MAX_WAIT_SECONDS
            self.waiting += 1
            try:
                async with asyncio.timeout(patience):
                    await turns.acquire()
            except TimeoutError:
                return await self.refuse(send, (
                    f"This ingest request waited {patience:g} seconds for its turn "
                    "(TRACKING_INGEST_MAX_WAIT_SECONDS); nothing was stored, retry later."))
            finally:
                self.waiting -= 1
        else:
            await turns.acquire()  # a free turn: returns at once
        started = time.monotonic()
        try:
            return await self.app(scope, receive, send)
        finally:
            turns.release()
            self.run_seconds += (time.monotonic() - started - self.run_seconds) / 32

    def retry_after(self) -> int:
        drain = (self.waiting + 1) * self.run_seconds / running_at_once()
        return int(min(RETRY_AFTER_MAX_SECONDS, max(RETRY_AFTER_MIN_SECONDS, math.ceil(drain))))

    async def refuse(self, send, detail: str):
        body = json.dumps(error_body(detail, "overloaded")).encode()
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(self.retry_after()).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})
