"""How the trace ingest path reads and writes the database.

A batch of frames is stored in one transaction, written once for both ways of talking to the
database (traces.services._ingest_steps): a generator that yields what it needs done (Lock,
ReadAll, Write) and is sent the answers. run_sync answers with Django's connection (any
database: SQLite, and callers outside the event loop), run_async with an async psycopg one
(traces.asyncdb, PostgreSQL on the event loop). The statements are vendor-specific: PostgreSQL
gets each step's statements in one round trip, SQLite plain ones.
"""

import json
from typing import NamedTuple

import psycopg
from django.db import connection
from django.utils import timezone
from psycopg.types.json import Jsonb

from plumbing.jsonio import database_json
from traces import assembly
from traces.assembly import OPEN
from traces.models import Span, Trace


class Lock(NamedTuple):
    """-> (Trace, stored span rows, created, stored event rows): the span rows of group_ids and
    None; with `everything` (the batch holds the trace's end, so it will probably be assembled
    now) every stored span and event, read after the lock in the same round trip."""
    trace_id: int
    group_ids: list  # of the spans the batch names
    everything: bool = False


class ReadAll(NamedTuple):
    trace: Trace  # -> (every stored span row, every stored event row)


class Write(NamedTuple):
    trace: Trace
    changes: assembly.FrameChanges
    known_rows: dict  # -> None


def run_sync(steps):
    """Run a batch's steps on Django's connection (inside the caller's transaction); its result."""
    answer = None
    try:
        while True:
            step = steps.send(answer)
            if isinstance(step, Lock):
                answer = _lock_trace(step.trace_id, step.group_ids, step.everything)
            elif isinstance(step, ReadAll):
                answer = _read_all(step.trace)
            else:
                answer = _write_frame(step.trace, step.changes, step.known_rows)
    except StopIteration as done:
        return done.value


async def run_async(steps, db):
    """Run a batch's steps on `db` (an asyncdb.Transaction), committing with the last; its
    result."""
    answer = None
    try:
        while True:
            step = steps.send(answer)
            if isinstance(step, Lock):
                answer = await db.run(
                    _lock_statements(step.trace_id, step.group_ids, step.everything), _locked)
            elif isinstance(step, ReadAll):
                answer = await db.run(_read_all_statements(step.trace.id), _all_rows)
            else:  # the last step: its pipeline commits too
                answer = await db.run(
                    _write_statements(step.trace, step.changes, step.known_rows), commit=True)
    except StopIteration as done:
        return done.value


def stored_number(trace: Trace):
    """A stored timestamp (as the database driver gives it) -> the number the client sent."""
    field = Span._meta.get_field("start")
    return lambda value: trace.as_number(field.from_db_value(value, None, connection))


# --- the statements ------------------------------------------------------------------------------
# The per-batch path runs hundreds of times a second, so it speaks plain SQL: a few statements per
# batch whatever its size (Django's query compiler cost more than the database did). On
# PostgreSQL each group of statements goes in one round trip: one query string on the event loop
# (asyncdb.Transaction), one pipeline on Django's connection. Neither is prepared (Django turns
# psycopg's automatic preparation off; the statements' plans are simple).

_STATE_FIELDS = ("start", "end", "duration", "group_id", "end_group_id", "service",
                 "integer_timestamps", "unfinished_span_count", "span_count", "event_count",
                 "name", "root_start", "last_seq", "updated", "status", "problems", "completed",
                 "error_count")

# Span rows as the steps answer them: (id, group_id, name, service, start, end, attributes,
# status_code, status_message).
_ALL_SPANS = ('SELECT "id", "group_id", "name", "service", "start", "end", "attributes", '
              '"status_code", "status_message" FROM "traces_span" WHERE "trace_id" = %s')
_KNOWN_SPANS = _ALL_SPANS + ' AND "group_id" '
_ALL_EVENTS = 'SELECT "name", "timestamp" FROM "traces_event" WHERE "trace_id" = %s'

# A new trace's row, as Trace() would be (Django's defaults are not the table's).
_CREATE_TRACE = """
    INSERT INTO "traces_trace" ("id", "status", "created", "updated", "group_id", "end_group_id",
        "integer_timestamps", "name", "service", "span_count", "event_count",
        "unfinished_span_count", "problems", "last_seq")
    VALUES (%s, %s, %s, %s, '', '', true, '', '', 0, 0, 0, '[]', 0)
    ON CONFLICT ("id") DO NOTHING RETURNING "id"
"""


def _lock_statements(trace_id: int, group_ids: list,
                     everything: bool = False) -> list[tuple[str, list]]:
    """PostgreSQL: make the trace's row if new (RETURNING says so), lock it, read the stored
    spans the batch names (or every stored row). In one pipeline each statement runs, with a
    fresh snapshot, once the one before it is done; an INSERT that meets a row another
    transaction is inserting waits for it, and the rows are read after the lock is granted."""
    now = timezone.now()
    statements = [(_CREATE_TRACE, [trace_id, OPEN, now, now]),
                  ('SELECT * FROM "traces_trace" WHERE "id" = %s FOR UPDATE', [trace_id])]
    if everything:
        statements += _read_all_statements(trace_id)
    elif group_ids:
        statements.append((_KNOWN_SPANS + "IN (SELECT json_array_elements_text(%s::json))",
                           [trace_id, database_json(group_ids)]))
    return statements


def _locked(results) -> tuple[Trace, list[tuple], bool, list | None]:
    """Lock's answer from the results of _lock_statements."""
    (_, created), (names, rows), *read = results
    trace = _trace_from_row(names, rows[0])
    if len(read) == 2:  # everything
        spans, events = _all_rows(read)
        return trace, spans, bool(created), events
    return trace, read[0][1] if read else [], bool(created), None


def _trace_from_row(names: list[str], row: tuple) -> Trace:
    values = dict(zip(names, row))
    if isinstance(values["problems"], str):
        values["problems"] = json.loads(values["problems"])
    # In the model's field order: from_db takes a full row as the fields in that order, and the
    # table's column order differs once a migration has added a column.
    fields = Trace._meta.concrete_fields
    return Trace.from_db(connection.alias, [field.attname for field in fields],
                         [values[field.column] for field in fields])


def _read_all_statements(trace_id: int) -> list[tuple[str, list]]:
    return [(_ALL_SPANS, [trace_id]), (_ALL_EVENTS, [trace_id])]


def _all_rows(results) -> tuple[list, list]:
    (_, spans), (_, events) = results
    return spans, events


def _write_rows(trace: Trace, changes, known_rows: dict, attributes=None):
    """The batch's rows and the trace's state. Attributes are JSON text (SQLite's columns), or
    with `attributes=_as_is` left as they are, for the PostgreSQL statements that carry the rows
    as one JSON text: there `(r->>5)::jsonb` reads an attributes object as its text and a null
    as NULL, so the attributes are not encoded twice (a JSON string inside the JSON)."""
    attributes = attributes or _json_text
    spans = [(s.group_id, s.name or "", s.service, _timestamp_text(s.start),
              _timestamp_text(s.end), attributes(s.attributes), s.status_code, s.status_message)
             for s in changes.new_spans]
    finished = [(known_rows[s.group_id][0], s.name or "", s.service, _timestamp_text(s.start),
                 _timestamp_text(s.end), attributes(s.attributes), s.status_code,
                 s.status_message) for s in changes.finished_spans]
    events = [(e.name, _timestamp_text(e.timestamp), attributes(e.attributes))
              for e in changes.events]
    trace.updated = timezone.now()
    ops = connection.ops
    state = [getattr(trace, f) for f in _STATE_FIELDS]
    state[_STATE_FIELDS.index("updated")] = ops.adapt_datetimefield_value(trace.updated)
    state[_STATE_FIELDS.index("completed")] = ops.adapt_datetimefield_value(trace.completed)
    return spans, finished, events, state


_SET_STATE = ", ".join(f'"{f}" = %s' for f in _STATE_FIELDS)
# A span row of _write_rows, as columns and as the values of a JSON array `r`.
_SPAN_COLUMNS = ('"group_id", "name", "service", "start", "end", "attributes", "status_code", '
                 '"status_message"')
_SPAN_VALUES = ("r->>0, r->>1, r->>2, (r->>3)::numeric, (r->>4)::numeric, (r->>5)::jsonb, "
                "(r->>6)::smallint, r->>7")


def _write_statements(trace: Trace, changes, known_rows: dict) -> list[tuple[str, list]]:
    """PostgreSQL: the batch's rows and the trace's new state (counters; status and problems
    once decided), one statement per table whatever the batch size. The rows go as one JSON
    text per table (made by orjson, expanded by the server), not as arrays that the driver
    quotes element by element."""
    spans, finished, events, state = _write_rows(trace, changes, known_rows, _as_is)
    state[_STATE_FIELDS.index("problems")] = Jsonb(trace.problems)
    statements = []
    # A trace's spans are received when the trace was (`Span.received`, the partition key).
    if spans:
        statements.append((
            f'INSERT INTO "traces_span" ("trace_id", "received", {_SPAN_COLUMNS}) '
            f"SELECT %s, %s, {_SPAN_VALUES} "
            "FROM json_array_elements(%s::json) AS r", [trace.id, trace.created,
                                                        database_json(spans)]))
    if finished:
        statements.append((
            'UPDATE "traces_span" AS s SET "name" = r->>1, "service" = r->>2, '
            '"start" = (r->>3)::numeric, "end" = (r->>4)::numeric, '
            '"attributes" = (r->>5)::jsonb, "status_code" = (r->>6)::smallint, '
            '"status_message" = r->>7 '
            "FROM json_array_elements(%s::json) AS r WHERE s.id = (r->>0)::bigint "
            'AND s."received" = %s',  # one partition to look in
            [database_json(finished), trace.created]))
    if events:
        statements.append((
            'INSERT INTO "traces_event" ("trace_id", "name", "timestamp", "attributes") '
            "SELECT %s, r->>0, (r->>1)::numeric, (r->>2)::jsonb "
            "FROM json_array_elements(%s::json) AS r",
            [trace.id, database_json(events)]))
    statements.append((f'UPDATE "traces_trace" SET {_SET_STATE} WHERE "id" = %s',
                       [*state, trace.id]))
    return statements


def create_statement(trace: Trace, changes) -> tuple[str, list]:
    """PostgreSQL: one statement that makes the trace with its rows and state, and does nothing
    if a trace of that id exists (it returns 1 when it made it, 0 otherwise)."""
    spans, _, events, state = _write_rows(trace, changes, {}, _as_is)
    state[_STATE_FIELDS.index("problems")] = Jsonb(trace.problems)
    columns = ", ".join(f'"{f}"' for f in ("id", "created", *_STATE_FIELDS))
    values = ", ".join(["%s"] * (2 + len(_STATE_FIELDS)))
    sql = [f'WITH made AS (INSERT INTO "traces_trace" ({columns}) VALUES ({values}) '
           'ON CONFLICT ("id") DO NOTHING RETURNING "id", "created")']
    params = [trace.id, trace.created, *state]
    if spans:
        sql.append(
            f', spans AS (INSERT INTO "traces_span" ("trace_id", "received", {_SPAN_COLUMNS}) '
            f"SELECT made.id, made.created, {_SPAN_VALUES} "
            "FROM made, json_array_elements(%s::json) AS r)")
        params.append(database_json(spans))
    if events:
        sql.append(
            ', events AS (INSERT INTO "traces_event" ("trace_id", "name", "timestamp", '
            '"attributes") SELECT made.id, r->>0, (r->>1)::numeric, (r->>2)::jsonb '
            "FROM made, json_array_elements(%s::json) AS r)")
        params.append(database_json(events))
    sql.append(" SELECT count(*) FROM made")
    return "".join(sql), params


# --- Django's connection (the sync path: SQLite, and callers outside the event loop) ----------


def pipeline(statements, read=None):
    """The statements in one pipeline (one round trip) on Django's PostgreSQL connection;
    read([(column names, rows) of each statement]) or None."""
    with connection.wrap_database_errors:
        cursors = [psycopg.Cursor(connection.connection) for _ in statements]
        try:
            with connection.connection.pipeline():
                for cursor, (sql, params) in zip(cursors, statements):
                    cursor.execute(sql, params)
            if read is None:
                return None
            return read([([column.name for column in cursor.description], cursor.fetchall())
                         if cursor.description else ([], []) for cursor in cursors])
        finally:
            for cursor in cursors:
                cursor.close()


def _lock_trace(trace_id: int, group_ids: list, everything: bool = False):
    """Lock's answer: the trace row, locked until the transaction ends (created open if new),
    the stored spans among `group_ids` as rows (id, group_id, name, service, start, end,
    attributes, status_code, status_message), whether this transaction created the row, and
    None; with `everything`, every stored span and the stored events instead. Two connections
    sending frames of one trace are serialised by the lock, and the spans are read after it is
    granted, so each frame sees the other's spans.
    SQLite locks the whole database for writers (IMMEDIATE transactions)."""
    if connection.vendor == "postgresql":
        return pipeline(_lock_statements(trace_id, group_ids, everything), _locked)
    created = False
    for _ in range(2):
        found = list(Trace.objects.raw('SELECT * FROM "traces_trace" WHERE "id" = %s',
                                       [trace_id]))
        trace, rows = (found[0] if found else None), []
        if trace is not None and everything:
            spans, events = _read_all(trace)
            return trace, spans, created, events
        with connection.cursor() as cursor:
            for first in range(0, len(group_ids), 900):  # SQLite's 999 parameters
                chunk = group_ids[first:first + 900]
                cursor.execute(_KNOWN_SPANS + f"IN ({', '.join(['%s'] * len(chunk))})",
                               [trace_id, *chunk])
                rows += cursor.fetchall()
        if trace is not None:
            return trace, rows, created, None
        Trace.objects.bulk_create([Trace(id=trace_id)], ignore_conflicts=True)
        created = True  # no other writer can have made it meanwhile: the database is ours
    raise AssertionError(f"trace {trace_id} could not be created")  # pragma: no cover


def _read_all(trace: Trace) -> tuple[list, list]:
    if connection.vendor == "postgresql":
        return pipeline(_read_all_statements(trace.id), _all_rows)
    with connection.cursor() as cursor:
        cursor.execute(_ALL_SPANS, [trace.id])
        spans = cursor.fetchall()
        cursor.execute(_ALL_EVENTS, [trace.id])
        return spans, cursor.fetchall()


def _write_frame(trace: Trace, changes, known_rows: dict) -> None:
    if connection.vendor == "postgresql":
        pipeline(_write_statements(trace, changes, known_rows), None)
        return
    spans, finished, events, state = _write_rows(trace, changes, known_rows)
    state[_STATE_FIELDS.index("problems")] = json.dumps(trace.problems)
    with connection.cursor() as cursor:
        if spans:
            cursor.executemany(
                f'INSERT INTO "traces_span" ("trace_id", {_SPAN_COLUMNS}) '
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", [(trace.id, *row) for row in spans])
        if finished:
            cursor.executemany(
                'UPDATE "traces_span" SET "name" = %s, "service" = %s, "start" = %s, '
                '"end" = %s, "attributes" = %s, "status_code" = %s, "status_message" = %s '
                'WHERE "id" = %s', [(*row[1:], row[0]) for row in finished])
        if events:
            cursor.executemany(
                'INSERT INTO "traces_event" ("trace_id", "name", "timestamp", "attributes") '
                "VALUES (%s, %s, %s, %s)", [(trace.id, *row) for row in events])
        cursor.execute(f'UPDATE "traces_trace" SET {_SET_STATE} WHERE "id" = %s',
                       [*state, trace.id])


def stored_json(value):
    """A JSON column as read by a raw query: parsed by psycopg's own connections, text on
    Django's (which parses in JSONField) and on SQLite."""
    return json.loads(value) if isinstance(value, str) else value


def _json_text(value) -> str | None:
    return None if value is None else json.dumps(value)


def _as_is(value):
    return value


def _timestamp_text(value) -> str | None:
    """A timestamp as the digits the client sent, for bulk writes (the database parses it into
    its NUMERIC column): cheaper than a Decimal, just as exact."""
    if value is None:
        return None
    return str(value) if isinstance(value, int) else repr(value)
