"""Threads of their own for database work on a hot path (trace frames, tracking batches,
machine reports).

Under daphne, Django runs each sync request on a thread made for it, with a connection opened
for it; at hundreds of writes a second both cost more than the writes. A WorkerThreads pool
keeps a few threads, and each thread keeps its connection (see kept_connection).
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection, connections


@contextmanager
def kept_connection():
    """Database work on this thread's connection, kept from one call to the next: thrown away
    when it broke, and handed back after each call when a connection pool is configured, so
    that an idle worker thread holds no pooled connection."""
    try:
        yield
    except DatabaseError:
        connection.close()
        raise
    finally:
        if connection.settings_dict.get("OPTIONS", {}).get("pool"):
            connection.close()  # with a pool, closing hands it back (cheap)


class WorkerThreads:
    """A thread pool made on first use, its size read from the setting named `size_setting`."""

    def __init__(self, name: str, size_setting: str):
        self.name = name
        self.size_setting = size_setting
        self._executor = None
        self._threads = 0  # the executor's size, read when it was made
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return getattr(settings, self.size_setting)

    @property
    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._threads = self.size
                self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix=self.name)
            return self._executor

    def close_connections(self) -> None:
        """Close the connection each thread keeps (tests; before dropping a database)."""
        if self._executor is None:
            return
        count = self._threads
        everyone = threading.Barrier(count)

        def close():
            connections.close_all()
            try:  # hold this thread until each thread has a task: one close per thread
                everyone.wait(timeout=5)
            except threading.BrokenBarrierError:
                pass

        for future in [self._executor.submit(close) for _ in range(count)]:
            future.result()
