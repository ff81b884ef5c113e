"""Closing the idle connections of a psycopg_pool pool whose event loop has stopped.

pool.close() needs the pool's loop; once a test's loop is gone, its pool's idle connections are
reachable only through the private deque AsyncConnectionPool._pool.
plumbing/tests/test_library_internals.py fails, naming psycopg_pool and its pinned version, when
that changes.
"""


def close_idle_connections(pool) -> None:
    """Close every idle connection of `pool` without its (stopped) event loop; none can be in
    use, since only the loop's tasks could use them."""
    for conn in list(pool._pool):
        conn.pgconn.finish()
    pool._pool.clear()
