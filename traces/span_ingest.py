"""The one way OpenTelemetry spans get in, whatever the wire format (OTLP/HTTP protobuf or JSON,
Zipkin v2): `ingest_spans`, and reading such a trace back.

A batch holds spans of any number of traces, in any order (SDKs send children before their
parents, and a trace's spans across many batches). It is written set-based: on PostgreSQL one
round trip whatever its size (the statements of one transaction sent as one query string, rows
passed as one JSON text per table); on SQLite a few executemany calls. A trace's row is made by
its first span, and its counters, bounds, error count and name (its root span's, once the root
has arrived) follow each batch. A span sent again (an exporter retrying) is stored once.

An OTLP trace has no end message: it is complete once its root span has arrived (spans are
exported when they end) and no span arrived for TRACE_OTLP_QUIET_SECONDS. The read path decides
(`current_status`), so no job has to run for it.
"""

import json
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from traces import live, otel
from traces.assembly import OPEN
from traces.models import Span, Trace


@dataclass
class SpansResult:
    accepted: int  # stored now or before (a span sent again is not stored twice)
    rejected: int
    message: str  # why spans were refused, "" when none was


def ingest_spans(decoded: otel.Decoded) -> SpansResult:
    """Store the decoded spans (refused ones are only counted); one transaction."""
    spans = decoded.spans
    if not spans:
        return SpansResult(0, decoded.rejected, decoded.message)
    traces = {}
    for span in spans:
        traces.setdefault(span.trace_id, otel.row_id(span.trace_id))
    traces = dict(sorted(traces.items(), key=lambda item: item[1]))  # rows locked in id order
    now = timezone.now()
    if connection.vendor == "postgresql":
        collided = _write_postgresql(traces, spans, now)
    else:
        collided = _write_sqlite(traces, spans, now)
    live.spans_stored(traces, collided)  # their open pages fetch the new spans, after commit
    rejected, message = decoded.rejected, decoded.message
    if collided:
        refused = sum(1 for span in spans if span.trace_id in collided)
        rejected += refused
        message = "; ".join(filter(None, [message, (
            f"{refused} span(s) refused: their trace's row is taken by another trace id "
            "(a collision of the low 63 bits)")]))
    return SpansResult(len(spans) - (rejected - decoded.rejected), rejected, message)


def _span_rows(traces: dict, spans: list[otel.OtelSpan]) -> list[tuple]:
    return [(traces[s.trace_id], s.span_id, s.parent_span_id, s.name, s.service, s.kind,
             str(s.start), str(s.end), s.status_code, s.status_message,
             _json_or_none(s.attributes), _json_or_none(s.resource), _json_or_none(s.events),
             _json_or_none(s.links), s.trace_id) for s in spans]


def _json_or_none(value) -> str | None:
    if not value:
        return None
    text = json.dumps(value)
    # Neither PostgreSQL's jsonb nor its text columns store NUL.
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text


# --- PostgreSQL: one round trip -----------------------------------------------------------------

_NEW_TRACES = """
INSERT INTO "traces_trace" ("id", "trace_id", "status", "created", "updated", "group_id",
    "end_group_id", "integer_timestamps", "name", "service", "span_count", "event_count",
    "unfinished_span_count", "problems", "last_seq", "error_count")
SELECT (r->>0)::bigint, r->>1, 'open', %(now)s, %(now)s, '', '', true, '', '', 0, 0, 0, '[]', 0, 0
FROM json_array_elements(%(traces)s::json) AS r
ON CONFLICT ("id") DO NOTHING
"""

_LOCK_TRACES = """
SELECT t."id" FROM "traces_trace" AS t
WHERE t."id" IN (SELECT (r->>0)::bigint FROM json_array_elements(%(traces)s::json) AS r)
ORDER BY t."id" FOR UPDATE
"""

# The spans of traces whose row is theirs, a span sent again skipped; then each trace's row
# follows what was stored. A span is received when its trace was (`Span.received`, the partition
# key, which the unique constraint includes), so a span sent again meets its first copy.
_SPANS = """
WITH stored AS (
    INSERT INTO "traces_span" ("trace_id", "received", "group_id", "span_id", "parent_span_id",
        "name", "service", "kind", "start", "end", "status_code", "status_message", "attributes",
        "resource", "events", "links")
    SELECT t."id", t."created", r->>1, r->>1, r->>2, r->>3, r->>4, (r->>5)::smallint,
        (r->>6)::numeric, (r->>7)::numeric, (r->>8)::smallint, r->>9, (r->>10)::jsonb,
        (r->>11)::jsonb, (r->>12)::jsonb, (r->>13)::jsonb
    FROM json_array_elements(%(spans)s::json) AS r
    JOIN "traces_trace" AS t ON t."id" = (r->>0)::bigint AND t."trace_id" = r->>14
    ON CONFLICT ("trace_id", "group_id", "received") DO NOTHING
    RETURNING "trace_id", "parent_span_id", "name", "service", "start", "end", "status_code"
), batch AS (
    SELECT "trace_id", count(*) AS spans, min("start") AS first, max("end") AS last,
        count(*) FILTER (WHERE "status_code" = 2) AS errors,
        min("start") FILTER (WHERE "parent_span_id" = '') AS root_start,
        (array_agg("name" ORDER BY "start") FILTER (WHERE "parent_span_id" = ''))[1] AS root_name,
        (array_agg("service" ORDER BY "start") FILTER (WHERE "parent_span_id" = ''))[1]
            AS root_service,
        (array_agg("name" ORDER BY "start"))[1] AS first_name,
        (array_agg("service" ORDER BY "start"))[1] AS first_service
    FROM stored GROUP BY "trace_id"
)
UPDATE "traces_trace" AS t SET
    "span_count" = t."span_count" + b.spans,
    "error_count" = t."error_count" + b.errors,
    "start" = LEAST(t."start", b.first),
    "end" = GREATEST(t."end", b.last),
    "duration" = GREATEST(t."end", b.last) - LEAST(t."start", b.first),
    "name" = CASE WHEN t."root_start" IS NOT NULL THEN t."name"
                  ELSE COALESCE(b.root_name, NULLIF(t."name", ''), b.first_name) END,
    "service" = CASE WHEN t."root_start" IS NOT NULL THEN t."service"
                     ELSE COALESCE(b.root_service, NULLIF(t."service", ''), b.first_service) END,
    "root_start" = COALESCE(t."root_start", b.root_start),
    "status" = 'open', "completed" = NULL, "updated" = %(now)s
FROM batch AS b WHERE t."id" = b."trace_id"
"""

_COLLIDED = """
SELECT r->>1 AS collided FROM json_array_elements(%(traces)s::json) AS r
JOIN "traces_trace" AS t ON t."id" = (r->>0)::bigint
WHERE t."trace_id" IS DISTINCT FROM r->>1
"""


def _write_postgresql(traces: dict, spans: list, now) -> set[str]:
    params = {"now": now, "traces": json.dumps([[row, hex_id] for hex_id, row in traces.items()]),
              "spans": json.dumps(_span_rows(traces, spans))}
    statements = [_NEW_TRACES, _LOCK_TRACES, _SPANS, _COLLIDED]
    connection.ensure_connection()
    if connection.in_atomic_block:  # a caller's transaction (tests): a savepoint in it
        with transaction.atomic():
            return _run(statements, params)
    # One round trip: BEGIN, the statements and COMMIT in one query string.
    try:
        return _run(["BEGIN", *statements, "COMMIT"], params)
    except BaseException:
        with connection.wrap_database_errors:
            if connection.connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                connection.connection.rollback()
        raise


def _run(statements: list[str], params: dict) -> set[str]:
    with connection.wrap_database_errors:
        with psycopg.ClientCursor(connection.connection) as cursor:
            cursor.execute(";\n".join(statements), params)
            collided = set()
            while True:
                if cursor.description is not None and cursor.description[0].name == "collided":
                    collided = {row[0] for row in cursor.fetchall()}
                if not cursor.nextset():
                    break
            return collided


# --- SQLite (and any other database): a few statements ------------------------------------------

_SQLITE_SPAN_COLUMNS = ('"trace_id", "group_id", "span_id", "parent_span_id", "name", "service", '
                        '"kind", "start", "end", "status_code", "status_message", "attributes", '
                        '"resource", "events", "links"')


def _write_sqlite(traces: dict, spans: list, now) -> set[str]:
    stamp = connection.ops.adapt_datetimefield_value(now)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            'INSERT INTO "traces_trace" ("id", "trace_id", "status", "created", "updated", '
            '"group_id", "end_group_id", "integer_timestamps", "name", "service", "span_count", '
            '"event_count", "unfinished_span_count", "problems", "last_seq", "error_count") '
            "VALUES (%s, %s, 'open', %s, %s, '', '', 1, '', '', 0, 0, 0, '[]', 0, 0) "
            'ON CONFLICT ("id") DO NOTHING',
            [(row, hex_id, stamp, stamp) for hex_id, row in traces.items()])
        ids = list(traces.values())
        theirs = {}
        for first in range(0, len(ids), 900):  # SQLite's 999 parameters
            chunk = ids[first:first + 900]
            cursor.execute('SELECT "id", "trace_id" FROM "traces_trace" WHERE "id" IN '
                           f"({', '.join(['%s'] * len(chunk))})", chunk)
            theirs.update(cursor.fetchall())
        collided = {hex_id for hex_id, row in traces.items() if theirs.get(row) != hex_id}
        rows = [row[:-1] for row in _span_rows(traces, spans) if row[-1] not in collided]
        cursor.executemany(
            f'INSERT INTO "traces_span" ({_SQLITE_SPAN_COLUMNS}) VALUES ('
            + ", ".join(["%s"] * 15) + ') ON CONFLICT ("trace_id", "group_id") DO NOTHING',
            [(row[0], row[1], *row[1:]) for row in rows])
        # Each touched trace's state from its stored spans (SQLite is the small, local case).
        of_trace = 'FROM "traces_span" s WHERE s."trace_id" = "traces_trace"."id"'
        cursor.executemany(f"""
            UPDATE "traces_trace" SET
                "span_count" = (SELECT count(*) {of_trace}),
                "error_count" = (SELECT count(*) {of_trace} AND s."status_code" = 2),
                "start" = (SELECT min(s."start") {of_trace}),
                "end" = (SELECT max(s."end") {of_trace}),
                "root_start" = (SELECT min(s."start") {of_trace} AND s."parent_span_id" = ''),
                "name" = COALESCE((SELECT s."name" {of_trace} {_ROOT_FIRST}), ''),
                "service" = COALESCE((SELECT s."service" {of_trace} {_ROOT_FIRST}), ''),
                "status" = 'open', "completed" = NULL, "updated" = %s
            WHERE "id" = %s""", [(stamp, row) for hex_id, row in traces.items()
                                 if hex_id not in collided])
        cursor.executemany('UPDATE "traces_trace" SET "duration" = "end" - "start" '
                           'WHERE "id" = %s', [(row,) for row in ids])
    return collided


# The root span's column, else the earliest span's.
_ROOT_FIRST = "ORDER BY s.\"parent_span_id\" <> '', s.\"start\", s.\"span_id\" LIMIT 1"


# --- reading ------------------------------------------------------------------------------------

def quiet_cutoff():
    return timezone.now() - timedelta(seconds=settings.TRACE_OTLP_QUIET_SECONDS)


def current_status(trace: Trace) -> str:
    return trace.current_status


def now_complete() -> Q:
    """The traces current_status() calls complete though their row still says open."""
    return Q(trace_id__isnull=False, status=OPEN, root_start__isnull=False,
             updated__lte=quiet_cutoff())


def trace_tree(trace: Trace) -> dict:
    rows = list(trace.spans.values(
        "span_id", "parent_span_id", "name", "service", "kind", "start", "end", "status_code",
        "status_message", "attributes", "resource", "events", "links"))
    for row in rows:
        row["start"], row["end"] = int(row["start"]), int(row["end"])
    return otel.tree(rows, open_=current_status(trace) == OPEN)


def missing_parts(trace: Trace) -> list[str]:
    if current_status(trace) != OPEN:
        return []
    if trace.root_start is None:
        return ["the root span"]
    return [f"{settings.TRACE_OTLP_QUIET_SECONDS:g} s without new spans"]


# Span is imported for readers of this module: its status codes are otel's.
assert (Span.UNSET, Span.OK, Span.ERROR) == (0, 1, otel.ERROR)
