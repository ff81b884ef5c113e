"""A transaction on Django's PostgreSQL connection whose BEGIN and COMMIT travel with its first
and last statements.

Under Django's `transaction.atomic()` psycopg sends BEGIN on its own before the first statement
and Django sends COMMIT on its own at the end: two round trips of the database's every write,
each a wake-up of the thread waiting for it. An ingest path that writes a batch in two or three
statements halves its round trips by sending "BEGIN;" in front of its first statement and
";COMMIT" after its last, which psycopg's client-side binding cursor (the simple query protocol)
sends as one query string.

Inside a caller's transaction (a test's, a management command's) the steps run in a savepoint of
it instead, and commit nothing themselves.
"""

import psycopg
from django.db import connection, transaction


def in_one_transaction(steps):
    """steps(begin, commit) -> result, run once: `begin` goes in front of its first statement and
    `commit` after its last (both "" inside a caller's transaction). Rolled back if it raises.
    PostgreSQL only."""
    connection.ensure_connection()
    if connection.in_atomic_block:
        with transaction.atomic():
            return steps("", "")
    try:
        return steps("BEGIN;\n", ";\nCOMMIT")
    except BaseException:
        with connection.wrap_database_errors:
            if connection.connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                connection.connection.rollback()
        raise
