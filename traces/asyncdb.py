"""PostgreSQL on the event loop, for the trace ingest path.

Django's connections are synchronous: the websocket consumer would hand each batch of frames to
a thread, and at hundreds of traces a second the hand-over (and the threads contending for the
GIL with the event loop) cost more than the database did. On PostgreSQL the consumer stores its
batches here instead: psycopg's async connections, from a psycopg_pool pool per event loop (one
in a server process), made from the same DATABASES settings as Django's.

Pool size: TRACE_INGEST_THREADS connections per server process (the threads' count on SQLite,
which stays on Django's connections); waiting for one and connecting follow the project's
connection pool settings (DATABASE_POOL_TIMEOUT, DATABASE_POOL_RECONNECT_TIMEOUT).
"""

import asyncio
import weakref
from contextlib import asynccontextmanager

import psycopg
from django.conf import settings
from django.db import connections
from psycopg_pool import AsyncConnectionPool

_pools = weakref.WeakKeyDictionary()  # event loop -> its pool


def available() -> bool:
    """Whether the default database is PostgreSQL (else: Django's connections, on threads)."""
    return connections["default"].vendor == "postgresql"


class StaleConnection(Exception):
    """The pool handed out a connection that had broken while idle (a PostgreSQL restart):
    nothing was sent on it that could have been committed, so the batch may be tried again."""


class Transaction:
    """One transaction on one pooled connection: groups of statements, each group in one
    pipeline (one round trip)."""

    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn
        self.round_trips = 0

    async def run(self, statements: list[tuple[str, list]], read=None, commit=False):
        """Run `statements` in one round trip (with COMMIT after them when `commit`); return
        read([(column names, rows) of each statement]) or None."""
        cursors = [self.conn.cursor() for _ in statements]
        try:
            async with self.conn.pipeline():
                for cursor, (sql, params) in zip(cursors, statements):
                    await cursor.execute(sql, params)
                if commit:
                    await self.conn.execute("COMMIT")
            self.round_trips += 1
            if read is None:
                return None
            return read([([column.name for column in cursor.description],
                           await cursor.fetchall()) if cursor.description else ([], [])
                         for cursor in cursors])
        except psycopg.OperationalError as error:
            if self.round_trips == 0 and self.conn.broken:
                raise StaleConnection(str(error)) from error
            raise
        finally:
            for cursor in cursors:
                await cursor.close()


@asynccontextmanager
async def transaction():
    """A Transaction on a pooled connection: rolled back if the block raises, committed at the
    end unless a run(commit=True) did it already."""
    pool = await _pool()
    async with pool.connection() as conn:
        yield Transaction(conn)


async def _pool() -> AsyncConnectionPool:
    loop = asyncio.get_running_loop()
    opened = _pools.get(loop)
    if opened is None:
        close_pools()  # of loops that are gone (tests run one loop after another)
        opened = _pools[loop] = asyncio.ensure_future(_open_pool())
    return await opened


async def _open_pool() -> AsyncConnectionPool:
    database = connections["default"]
    params = database.get_connection_params()
    # Server-side binding (psycopg's own cursors, not Django's client-side one), and prepared
    # statements after a few uses on each connection, unless the settings turn them off (a
    # transaction-pooling proxy in front of PostgreSQL).
    params.pop("cursor_factory", None)
    if "prepare_threshold" not in database.settings_dict["OPTIONS"]:
        params.pop("prepare_threshold", None)
    pooling = database.settings_dict["OPTIONS"].get("pool")
    pooling = pooling if isinstance(pooling, dict) else {}
    pool = AsyncConnectionPool(
        kwargs=params, min_size=1, max_size=settings.TRACE_INGEST_THREADS,
        timeout=pooling.get("timeout", 2.0),
        reconnect_timeout=pooling.get("reconnect_timeout", 5.0),
        name="trace-ingest", open=False,
    )
    await pool.open(wait=False)
    # Closed with its loop: asyncio.run() and asyncio.Runner finalise the async generators of
    # a loop before closing it (a test's loop; a server's lives as long as its process).
    closer = _close_with_loop(pool)
    await closer.__anext__()
    _closers[asyncio.get_running_loop()] = closer
    return pool


_closers = weakref.WeakKeyDictionary()  # event loop -> the async generator closing its pool


async def _close_with_loop(pool: AsyncConnectionPool):
    try:
        yield
    finally:
        await pool.close(timeout=1)


def close_pools() -> None:
    """Close the connections of the pools of event loops that have stopped (tests, before a
    test database is dropped). A running loop's pool is left alone."""
    for loop, opened in list(_pools.items()):
        if loop.is_running():
            continue
        del _pools[loop]
        _closers.pop(loop, None)
        if not opened.done() or opened.cancelled() or opened.exception() is not None:
            continue
        pool = opened.result()
        # The loop is gone: close its idle connections without it (none can be in use).
        for conn in list(pool._pool):
            conn.pgconn.finish()
        pool._pool.clear()
