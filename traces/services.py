"""The one way trace messages get in, whatever the wire format: `ingest_frame` / `ingest_messages`.

Each frame is one transaction on a locked trace row: validate, fold into the stored trace, write
the new rows in bulk, assemble once the trace is ready, and publish a live frame after commit.
A refused frame stores nothing; an accepted one is durable before the client gets any reply.
"""

import json
from dataclasses import dataclass
from typing import NamedTuple

import psycopg
from psycopg.types.json import Jsonb
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from plumbing import publisher
from plumbing.live import publish_after_commit
from traces import assembly, asyncdb
from traces.assembly import COMPLETE, INCONSISTENT, OPEN, Conflict
from traces.messages import (
    SPAN_END, SPAN_START, FrameError, Message, parse_acked_frame, parse_frame,
)
from traces.models import Span, Trace

STORED_REPLY = "Trace stored. Closing the connection"  # seed 000's text; seed clients match it


class IngestError(Exception):
    """Input the trace cannot take; the text is meant for the client."""


@dataclass
class IngestResult:
    trace_id: int
    status: str  # OPEN, COMPLETE or INCONSISTENT after this frame
    stored: int  # messages written by this frame
    repeats: int  # exact repeats of stored messages, ignored
    problems: list[str]
    span_count: int = 0
    event_count: int = 0
    acked: int | None = None  # ?ack=1: every frame with a seq up to this one is stored
    # The trace had rows before this transaction: other connections may be waiting on it, so
    # its decision must be told to every server process (consumers.DecisionListener).
    existed: bool = True

    @property
    def finished(self) -> bool:
        return self.status != OPEN

    @property
    def decision(self) -> dict:
        """What the trace's other ingest connections hear once it is decided."""
        return {"event": "trace.decided", "id": self.trace_id, "reply": reply_for(self)}

    @property
    def live_frame(self) -> dict:
        """What the trace page hears of this frame (it refetches the trace)."""
        return {"event": "trace.updated", "id": self.trace_id, "status": self.status,
                "span_count": self.span_count, "event_count": self.event_count}


def trace_group(trace_id: int) -> str:
    """Channel-layer group of one trace's live page."""
    return f"traces.trace.{trace_id}"


def ingest_group(trace_id: int | None = None) -> str:
    """Channel-layer group on which a trace's decision reaches its other ingest connections.

    One group for all traces (the decision names its trace): each server process subscribes to
    it once, not each connection to a group of its own trace (a Redis round trip per socket for
    the rare trace sent over several connections). A client that reconnected while its old
    connection's last frames were still queued gets its answer on the new connection, on
    whichever process it landed."""
    return "traces.ingest.decided"


def ingest_frame(trace_id: int, data: str | bytes, publish: bool = True) -> IngestResult:
    """One websocket frame of seed 000 messages (JSON text)."""
    try:
        messages = parse_frame(
            data, settings.TRACE_MAX_FRAME_BYTES, settings.TRACE_MAX_FRAME_MESSAGES
        )
    except FrameError as error:
        raise IngestError(str(error)) from None
    return ingest_messages(trace_id, messages, publish)


def ingest_messages(trace_id: int, messages: list[Message], publish: bool = True) -> IngestResult:
    """Store validated messages of trace `trace_id`; IngestError (nothing stored) otherwise.

    With publish=False the caller sends `result.live_frame` itself (the websocket consumer does,
    from its event loop, throttled) once this returns, i.e. after the commit."""
    result, refused = _ingest_parsed(trace_id, [messages], publish)
    if refused is not None:
        raise refused
    return result


def ingest_frames(trace_id: int, frames: list, publish: bool = True, acked: bool = False):
    """Frames that arrived together on one connection (JSON texts, in order), in one transaction
    with the outcome of storing them one by one: each frame all or nothing; the first refused
    frame stops the batch (the ones before it are kept); the frame that decides the trace ends
    it (the connection is closing). Returns (IngestResult of the stored frames or None,
    IngestError of the refused frame or None).

    acked: the connection asked for acknowledgements, its frames are {"seq", "messages"}
    envelopes (messages.parse_acked_frame); a frame whose seq is not above the trace's highest
    stored one is a repeat (a client resending what it was not sure of) and is not stored again.
    """
    parsed, seqs, refused = _parse_frames(frames, acked)
    if not parsed:
        return None, refused
    result, conflict = _ingest_parsed(trace_id, parsed, publish, seqs if acked else None)
    return _outcome(result, conflict, refused)


async def aingest_frames(trace_id: int, frames: list, acked: bool = False, new: bool = False):
    """ingest_frames (publish=False) on the event loop, over an async PostgreSQL connection of
    traces.asyncdb: no thread; a round trip per step of the transaction (_ingest_steps).
    Only for PostgreSQL (asyncdb.available()).

    new: the trace is probably new (a connection's first batch). The batch is then first merged
    into an empty trace and written in one statement that does nothing if the trace exists: a
    seed client's trace (one frame on a new socket) costs one round trip and one statement.
    If the trace existed, the batch takes the usual way."""
    parsed, seqs, refused = _parse_frames(frames, acked)
    if not parsed:
        return None, refused
    if new:
        whole = _as_new_trace(trace_id, parsed, seqs if acked else None)
        if whole is not None:
            statement, result, conflict = whole
            try:
                made = await asyncdb.run_alone(*statement)
            except asyncdb.StaleConnection:
                made = False  # the usual way, on another connection, finds out
            if made:
                return _outcome(result, conflict, refused)
    for attempt in (1, 2):
        steps = _ingest_steps(trace_id, parsed, seqs if acked else None)
        try:
            async with asyncdb.transaction() as db:
                result, conflict = await _run_async(steps, db)
            break
        except asyncdb.StaleConnection:
            if attempt == 2:
                raise
        except psycopg.IntegrityError:
            return None, _changed_meanwhile(trace_id)
    return _outcome(result, conflict, refused)


def _as_new_trace(trace_id: int, frames: list[list[Message]], seqs):
    """(the statement storing the batch as a new trace, its IngestResult, refused frame), or
    None when the batch is refused as a whole (the usual way then says why, from the stored
    trace)."""
    steps = _ingest_steps(trace_id, frames, seqs)
    now = timezone.now()
    try:
        steps.send(None)  # _Lock
        write = steps.send((Trace(id=trace_id, created=now, updated=now), [], True))
        steps.send(None)
    except StopIteration as done:
        return _create_statement(write.trace, write.changes), *done.value
    except IngestError:
        return None
    raise AssertionError("a batch of a new trace has no step after its write")  # pragma: no cover


def _parse_frames(frames: list, acked: bool):
    parsed, seqs, refused = [], [], None
    for data in frames:
        try:
            if acked:
                seq, messages = parse_acked_frame(
                    data, settings.TRACE_MAX_FRAME_BYTES, settings.TRACE_MAX_FRAME_MESSAGES)
                seqs.append(seq)
                parsed.append(messages)
            else:
                parsed.append(parse_frame(
                    data, settings.TRACE_MAX_FRAME_BYTES, settings.TRACE_MAX_FRAME_MESSAGES
                ))
        except FrameError as error:
            refused = IngestError(str(error))
            break
    return parsed, seqs, refused


def _outcome(result, conflict, refused):
    if result is not None and result.finished:
        return result, None
    return result, conflict or refused


def _changed_meanwhile(trace_id: int) -> IngestError:
    # Only reachable if the row lock were bypassed; the unique (trace, group_id) constraint
    # still keeps the trace whole.
    return IngestError(
        f"trace {trace_id} was changed by another connection at the same time; "
        "nothing from this frame was stored, send it again"
    )


def _ingest_parsed(trace_id: int, frames: list[list[Message]], publish: bool, seqs=None):
    try:
        with transaction.atomic():
            result, refused = _run_sync(_ingest_steps(trace_id, frames, seqs))
            if result is not None and publish:
                publisher.publish(trace_group(trace_id), result.live_frame)
                if result.finished:
                    publish_after_commit(ingest_group(trace_id), result.decision)
            return result, refused
    except IntegrityError:
        return None, _changed_meanwhile(trace_id)


def _stored_already(trace: Trace, resent: int, acked: int) -> IngestResult:
    """The result of frames that were all repeats of stored ones: nothing written, acknowledged
    (again) up to `acked`."""
    return IngestResult(trace.id, trace.status, 0, resent, list(trace.problems),
                        span_count=trace.span_count, event_count=trace.event_count, acked=acked)


# A batch in one transaction, written once for both ways of talking to the database: a generator
# that yields what it needs done (_Lock, _ReadAll, _Write) and is sent the answers; _run_sync
# answers with Django's connection (any database), _run_async with an async psycopg one.


class _Lock(NamedTuple):
    trace_id: int
    group_ids: list  # of the spans the batch names -> (Trace, their stored rows, created)


class _ReadAll(NamedTuple):
    trace: Trace  # -> (every stored span row, every stored event row)


class _Write(NamedTuple):
    trace: Trace
    changes: assembly.FrameChanges
    known_rows: dict  # -> None


def _run_sync(steps):
    answer = None
    try:
        while True:
            step = steps.send(answer)
            if isinstance(step, _Lock):
                answer = _lock_trace(step.trace_id, step.group_ids)
            elif isinstance(step, _ReadAll):
                answer = _read_all(step.trace)
            else:
                answer = _write_frame(step.trace, step.changes, step.known_rows)
    except StopIteration as done:
        return done.value


async def _run_async(steps, db):
    answer = None
    try:
        while True:
            step = steps.send(answer)
            if isinstance(step, _Lock):
                answer = await db.run(_lock_statements(step.trace_id, step.group_ids),
                                      _locked)
            elif isinstance(step, _ReadAll):
                answer = await db.run(_read_all_statements(step.trace.id), _all_rows)
            else:  # the last step: its pipeline commits too
                answer = await db.run(
                    _write_statements(step.trace, step.changes, step.known_rows), commit=True)
    except StopIteration as done:
        return done.value


def _ingest_steps(trace_id: int, frames: list[list[Message]], seqs: list[int] | None = None):
    group_ids = list({m.group_id for frame in frames for m in frame
                      if m.type in (SPAN_START, SPAN_END)})
    trace, known_span_rows, created = yield _Lock(trace_id, group_ids)
    if seqs is not None and all(seq <= trace.last_seq for seq in seqs):
        # Only frames already stored (resent after a reconnect): acknowledged again, and if
        # they decided the trace, its reply again.
        return _stored_already(trace, sum(map(len, frames)), trace.last_seq), None
    if not trace.is_open:
        raise IngestError(
            f"trace {trace_id} is already stored ({trace.status}); send a new trace under a new id"
        )

    number = _stored_number(trace)
    known_rows = {
        group_id: (row_id, assembly.SpanRecord(
            group_id, name or None, number(start), number(end), service))
        for row_id, group_id, name, service, start, end in known_span_rows
    }
    spans = {group_id: record for group_id, (_, record) in known_rows.items()}
    bounds, touched, events, repeats, refused = trace.bounds(), {}, [], 0, None
    merged, acked, span_total, resent = [], None, trace.span_count, 0
    for index, messages in enumerate(frames):
        seq = seqs[index] if seqs is not None else None
        if seq is not None and seq <= max(trace.last_seq, acked or 0):
            acked = max(acked or 0, trace.last_seq)  # a repeat of a stored frame
            resent += len(messages)
            continue
        try:
            changes = assembly.merge_frame(bounds, spans, messages)
        except Conflict as error:
            refused = IngestError(str(error))
            break
        new = sum(1 for span in changes.new_spans if span.group_id not in spans)
        if span_total + new > settings.TRACE_MAX_SPANS:
            refused = IngestError(
                f"trace {trace_id} would have {span_total + new} spans, over the limit of "
                f"{settings.TRACE_MAX_SPANS} spans per trace (TRACE_MAX_SPANS); nothing from "
                "this frame was stored")
            break
        span_total += new
        bounds = changes.bounds
        for span in changes.new_spans + changes.finished_spans:
            spans[span.group_id] = touched[span.group_id] = span
        events += changes.events
        repeats += changes.repeats
        merged.append(messages)
        if seq is not None:
            acked = trace.last_seq = seq
        if bounds.ready:
            break
    if not merged:
        if acked is None:
            raise refused
        return _stored_already(trace, resent, acked), refused
    frames = merged
    if trace.integer_timestamps and any(isinstance(m.timestamp, float)
                                        for frame in frames for m in frame):
        trace.integer_timestamps = False
    changes = assembly.FrameChanges(
        bounds,
        new_spans=[s for g, s in touched.items() if g not in known_rows],
        finished_spans=[s for g, s in touched.items() if g in known_rows],
        events=events, repeats=repeats,
    )

    trace.start, trace.end = _decimal(bounds.start), _decimal(bounds.end)
    trace.group_id, trace.end_group_id = bounds.start_group_id or "", bounds.end_group_id or ""
    trace.service = bounds.service
    trace.unfinished_span_count = bounds.unfinished_spans
    trace.span_count += len(changes.new_spans)
    trace.event_count += len(changes.events)
    if trace.start is not None and trace.end is not None:
        trace.duration = trace.end - trace.start
    root = assembly.open_root(trace.as_number(trace.root_start) if trace.name else None,
                              touched.values())
    if root is not None:
        trace.name, trace.root_start = root.name, _decimal(root.start)
    if bounds.ready:
        # The only assembly of a trace: once, when its last missing piece arrived. A trace
        # whose every row is in this batch is assembled from memory; otherwise the stored rows
        # are read once, here.
        span_records, event_records = list(touched.values()), list(events)
        if not created:
            span_rows, event_rows = yield _ReadAll(trace)
            stored = {group_id: assembly.SpanRecord(group_id, name or None, number(start),
                                                    number(end), service)
                      for group_id, name, start, end, service in span_rows}
            stored.update(touched)
            span_records = list(stored.values())
            event_records += [assembly.EventRecord(name, number(timestamp))
                              for name, timestamp in event_rows]
        as_number = trace.as_number
        result = assembly.assemble(
            bounds,
            [s._replace(start=as_number(s.start), end=as_number(s.end)) for s in span_records],
            [e._replace(timestamp=as_number(e.timestamp)) for e in event_records])
        trace.status, trace.problems, trace.name = result.status, result.problems, result.name
        trace.completed = timezone.now()
    yield _Write(trace, changes, known_rows)

    stored = sum(len(frame) for frame in frames) - repeats
    return IngestResult(trace_id, trace.status, stored, repeats + resent, list(trace.problems),
                        span_count=trace.span_count, event_count=trace.event_count,
                        acked=acked, existed=not created), refused


def _stored_number(trace: Trace):
    """A stored timestamp (as the database driver gives it) -> the number the client sent."""
    field = Span._meta.get_field("start")
    return lambda value: trace.as_number(field.from_db_value(value, None, connection))


# --- the statements ------------------------------------------------------------------------------
# The per-batch path runs hundreds of times a second, so it speaks plain SQL: a few statements per
# batch whatever its size (Django's query compiler cost more than the database did). On
# PostgreSQL each group of statements goes in one pipeline (one round trip) with server-side
# binding (prepared after a few uses on each connection).

_STATE_FIELDS = ("start", "end", "duration", "group_id", "end_group_id", "service",
                 "integer_timestamps", "unfinished_span_count", "span_count", "event_count",
                 "name", "root_start", "last_seq", "updated", "status", "problems", "completed")

_KNOWN_SPANS = ('SELECT "id", "group_id", "name", "service", "start", "end" FROM "traces_span" '
                'WHERE "trace_id" = %s AND "group_id" ')

# A new trace's row, as Trace() would be (Django's defaults are not the table's).
_CREATE_TRACE = """
    INSERT INTO "traces_trace" ("id", "status", "created", "updated", "group_id", "end_group_id",
        "integer_timestamps", "name", "service", "span_count", "event_count",
        "unfinished_span_count", "problems", "last_seq")
    VALUES (%s, %s, %s, %s, '', '', true, '', '', 0, 0, 0, '[]', 0)
    ON CONFLICT ("id") DO NOTHING RETURNING "id"
"""

_ALL_SPANS = ('SELECT "group_id", "name", "start", "end", "service" FROM "traces_span" '
              'WHERE "trace_id" = %s')
_ALL_EVENTS = 'SELECT "name", "timestamp" FROM "traces_event" WHERE "trace_id" = %s'


def _lock_statements(trace_id: int, group_ids: list) -> list[tuple[str, list]]:
    """PostgreSQL: make the trace's row if new (RETURNING says so), lock it, read the stored
    spans the batch names. In one pipeline each statement runs, with a fresh snapshot, once the
    one before it is done; an INSERT that meets a row another transaction is inserting waits
    for it, and the spans are read after the lock is granted."""
    now = timezone.now()
    statements = [(_CREATE_TRACE, [trace_id, OPEN, now, now]),
                  ('SELECT * FROM "traces_trace" WHERE "id" = %s FOR UPDATE', [trace_id])]
    if group_ids:
        statements.append((_KNOWN_SPANS + "IN (SELECT json_array_elements_text(%s::json))",
                           [trace_id, json.dumps(group_ids)]))
    return statements


def _locked(results) -> tuple[Trace, list[tuple], bool]:
    """(Trace, stored span rows, created) from the results of _lock_statements."""
    (_, created), (names, rows), *spans = results
    return _trace_from_row(names, rows[0]), spans[0][1] if spans else [], bool(created)


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


def _write_rows(trace: Trace, changes, known_rows: dict):
    spans = [(s.group_id, s.name or "", s.service, _timestamp_text(s.start),
              _timestamp_text(s.end)) for s in changes.new_spans]
    finished = [(known_rows[s.group_id][0], s.name or "", s.service, _timestamp_text(s.start),
                 _timestamp_text(s.end)) for s in changes.finished_spans]
    events = [(e.name, _timestamp_text(e.timestamp)) for e in changes.events]
    trace.updated = timezone.now()
    ops = connection.ops
    state = [getattr(trace, f) for f in _STATE_FIELDS]
    state[_STATE_FIELDS.index("updated")] = ops.adapt_datetimefield_value(trace.updated)
    state[_STATE_FIELDS.index("completed")] = ops.adapt_datetimefield_value(trace.completed)
    return spans, finished, events, state


_SET_STATE = ", ".join(f'"{f}" = %s' for f in _STATE_FIELDS)


def _write_statements(trace: Trace, changes, known_rows: dict) -> list[tuple[str, list]]:
    """PostgreSQL: the batch's rows and the trace's new state (counters; status and problems
    once decided), one statement per table whatever the batch size. The rows go as one JSON
    text per table (made by json.dumps in C, expanded by the server), not as arrays that the
    driver quotes element by element."""
    spans, finished, events, state = _write_rows(trace, changes, known_rows)
    state[_STATE_FIELDS.index("problems")] = Jsonb(trace.problems)
    statements = []
    if spans:
        statements.append((
            'INSERT INTO "traces_span" ("trace_id", "group_id", "name", "service", "start", "end") '
            "SELECT %s, r->>0, r->>1, r->>2, (r->>3)::numeric, (r->>4)::numeric "
            "FROM json_array_elements(%s::json) AS r", [trace.id, json.dumps(spans)]))
    if finished:
        statements.append((
            'UPDATE "traces_span" AS s SET "name" = r->>1, "service" = r->>2, '
            '"start" = (r->>3)::numeric, "end" = (r->>4)::numeric '
            "FROM json_array_elements(%s::json) AS r WHERE s.id = (r->>0)::bigint",
            [json.dumps(finished)]))
    if events:
        statements.append((
            'INSERT INTO "traces_event" ("trace_id", "name", "timestamp") '
            "SELECT %s, r->>0, (r->>1)::numeric FROM json_array_elements(%s::json) AS r",
            [trace.id, json.dumps(events)]))
    statements.append((f'UPDATE "traces_trace" SET {_SET_STATE} WHERE "id" = %s',
                       [*state, trace.id]))
    return statements


def _create_statement(trace: Trace, changes) -> tuple[str, list]:
    """PostgreSQL: one statement that makes the trace with its rows and state, and does nothing
    if a trace of that id exists (it returns 1 when it made it, 0 otherwise)."""
    spans, _, events, state = _write_rows(trace, changes, {})
    state[_STATE_FIELDS.index("problems")] = Jsonb(trace.problems)
    columns = ", ".join(f'"{f}"' for f in ("id", "created", *_STATE_FIELDS))
    values = ", ".join(["%s"] * (2 + len(_STATE_FIELDS)))
    sql = [f'WITH made AS (INSERT INTO "traces_trace" ({columns}) VALUES ({values}) '
           'ON CONFLICT ("id") DO NOTHING RETURNING "id")']
    params = [trace.id, trace.created, *state]
    if spans:
        sql.append(
            ', spans AS (INSERT INTO "traces_span" ("trace_id", "group_id", "name", "service", '
            '"start", "end") SELECT made.id, r->>0, r->>1, r->>2, (r->>3)::numeric, '
            "(r->>4)::numeric FROM made, json_array_elements(%s::json) AS r)")
        params.append(json.dumps(spans))
    if events:
        sql.append(
            ', events AS (INSERT INTO "traces_event" ("trace_id", "name", "timestamp") '
            "SELECT made.id, r->>0, (r->>1)::numeric FROM made, json_array_elements(%s::json) AS r)")
        params.append(json.dumps(events))
    sql.append(" SELECT count(*) FROM made")
    return "".join(sql), params


# --- Django's connection (the sync path: SQLite, and callers outside the event loop) ----------


def _pipeline(statements, read):
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


def _lock_trace(trace_id: int, group_ids: list) -> tuple[Trace, list[tuple], bool]:
    """The trace row, locked until the transaction ends (created open if new), the stored spans
    among `group_ids` as rows (id, group_id, name, service, start, end), and whether this
    transaction created the row. Two connections sending frames of one trace are serialised by
    the lock, and the spans are read after it is granted, so each frame sees the other's spans.
    SQLite locks the whole database for writers (IMMEDIATE transactions)."""
    if connection.vendor == "postgresql":
        return _pipeline(_lock_statements(trace_id, group_ids), _locked)
    created = False
    for _ in range(2):
        found = list(Trace.objects.raw('SELECT * FROM "traces_trace" WHERE "id" = %s',
                                       [trace_id]))
        trace, rows = (found[0] if found else None), []
        with connection.cursor() as cursor:
            for first in range(0, len(group_ids), 900):  # SQLite's 999 parameters
                chunk = group_ids[first:first + 900]
                cursor.execute(_KNOWN_SPANS + f"IN ({', '.join(['%s'] * len(chunk))})",
                               [trace_id, *chunk])
                rows += cursor.fetchall()
        if trace is not None:
            return trace, rows, created
        Trace.objects.bulk_create([Trace(id=trace_id)], ignore_conflicts=True)
        created = True  # no other writer can have made it meanwhile: the database is ours
    raise IngestError(f"trace {trace_id} could not be created")  # pragma: no cover


def _read_all(trace: Trace) -> tuple[list, list]:
    if connection.vendor == "postgresql":
        return _pipeline(_read_all_statements(trace.id), _all_rows)
    with connection.cursor() as cursor:
        cursor.execute(_ALL_SPANS, [trace.id])
        spans = cursor.fetchall()
        cursor.execute(_ALL_EVENTS, [trace.id])
        return spans, cursor.fetchall()


def _write_frame(trace: Trace, changes, known_rows: dict) -> None:
    if connection.vendor == "postgresql":
        _pipeline(_write_statements(trace, changes, known_rows), None)
        return
    spans, finished, events, state = _write_rows(trace, changes, known_rows)
    state[_STATE_FIELDS.index("problems")] = json.dumps(trace.problems)
    with connection.cursor() as cursor:
        if spans:
            cursor.executemany(
                'INSERT INTO "traces_span" ("trace_id", "group_id", "name", "service", "start", '
                '"end") VALUES (%s, %s, %s, %s, %s, %s)', [(trace.id, *row) for row in spans])
        if finished:
            cursor.executemany(
                'UPDATE "traces_span" SET "name" = %s, "service" = %s, "start" = %s, '
                '"end" = %s WHERE "id" = %s', [(*row[1:], row[0]) for row in finished])
        if events:
            cursor.executemany(
                'INSERT INTO "traces_event" ("trace_id", "name", "timestamp") VALUES (%s, %s, %s)',
                [(trace.id, *row) for row in events])
        cursor.execute(f'UPDATE "traces_trace" SET {_SET_STATE} WHERE "id" = %s',
                       [*state, trace.id])


def _decimal(value) -> Decimal | None:
    if value is None:
        return None
    # repr keeps every digit the float has, and nothing invented beyond it.
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def _timestamp_text(value) -> str | None:
    """A timestamp as the digits the client sent, for bulk writes (the database parses it into
    its NUMERIC column): cheaper than a Decimal, just as exact."""
    if value is None:
        return None
    return str(value) if isinstance(value, int) else repr(value)


def reply_for(result: IngestResult) -> str | None:
    """Seed 000's reply for a frame, None while the trace is incomplete."""
    if result.status == COMPLETE:
        return STORED_REPLY
    if result.status == INCONSISTENT:
        return f"Error: trace {result.trace_id} is inconsistent: {'; '.join(result.problems)}"
    return None


def trace_tree(trace: Trace) -> assembly.Assembly:
    """The tree of a stored trace (a preview while it is open)."""
    return assembly.assemble(trace.bounds(), trace.span_records(), trace.event_records())


def search_traces(filters: dict, traces=None):
    """Traces matching TraceFilterForm's cleaned data, newest first."""
    traces = Trace.objects.all() if traces is None else traces
    if filters.get("name"):
        traces = traces.filter(
            Exists(Span.objects.filter(trace_id=OuterRef("pk"), name=filters["name"]))
        )
    if filters.get("service"):
        traces = traces.filter(service=filters["service"])
    if filters.get("status"):
        traces = traces.filter(status=filters["status"])
    if filters.get("min_duration") is not None:
        traces = traces.filter(duration__gte=filters["min_duration"])
    if filters.get("max_duration") is not None:
        traces = traces.filter(duration__lte=filters["max_duration"])
    if filters.get("since"):
        traces = traces.filter(created__gte=filters["since"])
    if filters.get("until"):
        traces = traces.filter(created__lt=filters["until"])
    return traces.order_by("-created", "-id")


def delete_trace(trace: Trace) -> None:
    trace_id = trace.id
    with transaction.atomic():
        trace.delete()
        publisher.publish(trace_group(trace_id), {"event": "trace.deleted", "id": trace_id})


def missing_parts(trace: Trace) -> list[str]:
    return assembly.missing_parts(trace.bounds()) if trace.is_open else []
