"""Prepared statements for the few statements every machine report runs, on PostgreSQL.

Django's psycopg cursors bind parameters on the client (ClientCursor) and never prepare: every
statement is quoted in Python, then parsed and planned again by PostgreSQL. For the statements a
report runs every time (the five-table lock query, the tests' update, the two roll-up updates)
that was ~0.4 ms of server CPU per report and as much again in PostgreSQL. `cursor(connection)`
gives a Django cursor (query logging and execute wrappers kept) whose statements are bound on
the server and prepared on their first use on a connection, so later uses skip parse and plan.

Only for statements whose text does not vary with their values (a prepared statement is kept
per connection until it closes). A connection pooler in transaction mode (PgBouncer < 1.21)
would break prepared statements; this project's pool is psycopg_pool, in the process.
Elsewhere (SQLite) it is the connection's own cursor.
"""

from django.db.backends.postgresql.base import ServerBindingCursor


class _PreparingCursor(ServerBindingCursor):
    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


def cursor(connection):
    """A cursor of `connection` (Django's) that prepares what it runs, on PostgreSQL."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = _PreparingCursor(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(raw)
    return connection.make_cursor(raw)
