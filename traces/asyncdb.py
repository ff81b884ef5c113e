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

from plumbing.library_internals.psycopg_pool_idle import close_idle_connections

_pools = weakref.WeakKeyDictionary()  # event loop -> its pool


def available() -> bool:
    """Whether the default database is PostgreSQL (else: Django's connections, on threads)."""
    global _available
    if _available is None:
        _available = connections["default"].vendor == "postgresql"
    return _available


_available = None


class StaleConnection(Exception):
    """The connection broke on its first round trip (most likely it broke while idle in the
    pool: a PostgreSQL restart). A Transaction's first step commits nothing, so its batch may be
    tried again; after run_alone, the caller asks the database (in a Transaction) whether the
    statement took."""


class Transaction:
    """One transaction on one pooled connection, in as few round trips as it has steps.

    Each step's statements go to the server as one query string (the simple query protocol:
    several statements, parameters bound client-side): one send and one read on the event loop
    per step, where a pipeline of server-bound statements took a send and a wake-up of the loop
    per statement. The first step begins the transaction, the last may commit it."""

    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn
        self.round_trips = 0

    async def run(self, statements: list[tuple[str, list]], read=None, commit=False):
        """Run `statements` in one round trip (with COMMIT after them when `commit`); return
        read([(column names, rows) of each statement]) or None."""
        sqls = [sql for sql, _ in statements]
        params = [param for _, step_params in statements for param in step_params]
        if self.round_trips == 0:
            sqls.insert(0, "BEGIN")
        if commit:
            sqls.append("COMMIT")
        cursor = psycopg.AsyncClientCursor(self.conn)
        try:
            await cursor.execute(";\n".join(sqls), params)
            self.round_trips += 1
            if read is None:
                return None
            results = []
            more = True
            while more:
                results.append(([column.name for column in cursor.description],
                                 await cursor.fetchall()) if cursor.description else ([], []))
                more = cursor.nextset()
            if self.round_trips == 1:
                results = results[1:]  # BEGIN's
            return read(results[:len(statements)])
        except psycopg.OperationalError as error:
            if self.round_trips == 0 and self.conn.broken:
                raise StaleConnection(str(error)) from error
            raise
        finally:
            await cursor.close()


async def run_alone(sql: str, params: list):
    """One statement in a transaction of its own (one round trip); its first value. Its
    parameters are bound by the server (the extended protocol, one statement only): quoting a
    batch's JSON text into the statement was 7 % of the server's samples (py-spy) under
    bench/trace_clients.py's one-frame traces."""
    pool = await _pool()
    async with pool.connection() as conn:
        cursor = psycopg.AsyncCursor(conn)
        try:
            await cursor.execute(sql, params)
            return (await cursor.fetchone())[0]
        except psycopg.OperationalError as error:
            if conn.broken:
                raise StaleConnection(str(error)) from error
            raise
        finally:
            await cursor.close()


@asynccontextmanager
async def transaction():
    """A Transaction on a pooled connection: rolled back if the block raises, committed at the
    end unless a run(commit=True) did it already (the connections are in autocommit mode: the
    transaction is the Transaction's BEGIN to its COMMIT)."""
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
    params.pop("cursor_factory", None)  # Transaction picks its cursor
    pooling = database.settings_dict["OPTIONS"].get("pool")
    pooling = pooling if isinstance(pooling, dict) else {}
    pool = AsyncConnectionPool(
        kwargs={**params, "autocommit": True}, min_size=1, max_size=settings.TRACE_INGEST_THREADS,
        timeout=pooling.get("timeout", 2.0),
        reconnect_timeout=pooling.get("reconnect_timeout", 5.0),
        name="trace-ingest", open=False,
    )
    await pool.open(wait=False)
    loop = asyncio.get_running_loop()
    _closers[loop] = loop.create_task(_close_with_loop(pool))
    return pool


_closers = weakref.WeakKeyDictionary()  # event loop -> the task closing its pool


async def _close_with_loop(pool: AsyncConnectionPool):
    """Close the pool when the loop shuts down (a test's loop; a server's lives as long as its
    process). A task, cancelled with the loop's other tasks: psycopg_pool's workers swallow a
    cancellation that comes while they run a task (a connection being made) and wait for the
    next one for ever, so asyncio.run() would never end; closing the pool sends them their
    stop. An async generator's `finally` would run only after those tasks, too late."""
    try:
        await asyncio.Event().wait()
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
        # The loop is gone: close its idle connections without it (none can be in use).
        close_idle_connections(opened.result())
