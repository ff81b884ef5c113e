"""The one way OpenTelemetry spans get in, whatever the wire format (OTLP/HTTP protobuf or JSON,
Zipkin v2): `ingest_spans`, and reading such a trace back.

A batch holds spans of any number of traces, in any order (SDKs send children before their
parents, and a trace's spans across many batches). It is written set-based: on PostgreSQL in
two round trips whatever its size (three when some of its traces had spans), the spans as one
JSON text (_postgresql_steps); on SQLite a few executemany calls. A trace's row is made by its
first span, and its counters, bounds, error count and name (its root span's, once the root has
arrived) follow each batch. A span sent again (an exporter retrying) is stored once; a trace
takes at most TRACE_MAX_SPANS spans, the others are refused and counted.

An OTLP trace has no end message: it is complete once its root span has arrived (spans are
exported when they end) and no span arrived for TRACE_OTLP_QUIET_SECONDS. The read path decides
(`current_status`), so a trace reads complete on time; the complete_quiet_traces job
(traces/jobs.py, every minute) then stores the status, and a span arriving later opens the trace
again.
"""

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from plumbing.jsonio import database_json as _json_text
from plumbing.pg_transaction import in_one_transaction
from traces import live, otel, service_names
from traces.assembly import COMPLETE, OPEN
from traces.models import Span, Trace
from traces.storage import pipeline


@dataclass
class SpansResult:
    accepted: int  # stored now or before (a span sent again is not stored twice)
    rejected: int
    message: str  # why spans were refused, "" when none was


def ingest_spans(decoded: otel.Decoded, project: uuid.UUID | None = None) -> SpansResult:
    """Store the decoded spans (refused ones are only counted); one transaction. `project`: the
    public id of the project whose token sent them (a trace keeps its first batch's)."""
    spans = decoded.spans
    if not spans:
        return SpansResult(0, decoded.rejected, decoded.message)
    traces = {}
    for span in spans:
        if span.trace_id not in traces:
            traces[span.trace_id] = otel.row_id(span.trace_id)
    traces = dict(sorted(traces.items(), key=lambda item: item[1]))  # rows locked in id order
    now = timezone.now()
    if connection.vendor == "postgresql":
        plan = _write_postgresql(traces, spans, now, project)
    else:
        plan = _write_sqlite(traces, spans, now, project)
    live.spans_stored(traces, plan.collided)  # their open pages fetch the new spans, after commit
    rejected, reasons = decoded.rejected, [decoded.message]
    if plan.collided:
        refused = sum(1 for span in spans if span.trace_id in plan.collided)
        rejected += refused
        reasons.append(f"{refused} span(s) refused: their trace's row is taken by another trace "
                       "id (a collision of the low 63 bits)")
    if plan.over_cap:
        refused = sum(plan.over_cap.values())
        rejected += refused
        named = sorted(plan.over_cap)
        reasons.append(f"{refused} span(s) refused: trace(s) {', '.join(named[:3])}"
                       f"{', ...' if len(named) > 3 else ''} reached TRACE_MAX_SPANS "
                       f"({settings.TRACE_MAX_SPANS} spans per trace)")
    return SpansResult(len(spans) - (rejected - decoded.rejected), rejected,
                       "; ".join(filter(None, reasons)))


@dataclass
class _Plan:
    """What a batch writes, decided from the traces' locked rows and their stored spans."""

    spans: list  # the spans to insert: new ones, of traces whose row is theirs, under the cap
    collided: set  # trace ids whose row is another trace id's
    over_cap: dict  # trace id -> spans refused because the trace reached TRACE_MAX_SPANS


def _plan(traces: dict, spans: list[otel.OtelSpan], rows: dict, stored: set) -> _Plan:
    """rows: {row id: (trace id, span_count)} of the locked rows; stored: {(row id, span id)}
    of the batch's spans already in the database."""
    collided = {hex_id for hex_id, row in traces.items() if rows.get(row, ("",))[0] != hex_id}
    room = {row: settings.TRACE_MAX_SPANS - count for row, (_, count) in rows.items()}
    seen = set(stored)
    new, over_cap = [], {}
    for span in spans:
        if span.trace_id in collided:
            continue
        row = traces[span.trace_id]
        key = (row, span.span_id)
        if key in seen:  # sent again (an exporter retrying), or twice in this batch
            continue
        seen.add(key)
        if room[row] <= 0:
            over_cap[span.trace_id] = over_cap.get(span.trace_id, 0) + 1
            continue
        room[row] -= 1
        new.append(span)
    return _Plan(new, collided, over_cap)


def over_cap_problem() -> str:
    """What a trace that reached TRACE_MAX_SPANS keeps in its problems."""
    return (f"spans past TRACE_MAX_SPANS ({settings.TRACE_MAX_SPANS} per trace) were refused; "
            "the exporter was told how many")


def _span_rows(traces: dict, spans: list[otel.OtelSpan]):
    """SQLite: the spans' rows in the column order of _COLUMNS; spans of one resource share its
    JSON."""
    resources: dict[int, str | None] = {}
    as_json = _json_or_none
    for s in spans:
        resource = resources.get(id(s.resource), "")
        if resource == "":
            resource = resources[id(s.resource)] = as_json(s.resource)
        yield (traces[s.trace_id], s.span_id, s.span_id, s.parent_span_id, s.name, s.service,
               s.kind, s.start, s.end, s.status_code, s.status_message, as_json(s.attributes),
               resource, as_json(s.events) if s.events else None,
               as_json(s.links) if s.links else None)


_COLUMNS = ('"trace_id", "group_id", "span_id", "parent_span_id", "name", "service", "kind", '
            '"start", "end", "status_code", "status_message", "attributes", "resource", '
            '"events", "links"')


def _json_or_none(value) -> str | None:
    return _json_text(value) if value else None


def _batch(traces: dict, plan: _Plan) -> str:
    """What the batch adds to each trace row (the statements' parameter: one JSON text, read by
    json_to_recordset): spans, errors, first start, last end, the earliest root span's start,
    name and service, the earliest span's name and service, whether spans were refused for the
    cap."""
    per_trace: dict[str, list] = {}
    for span in plan.spans:
        per_trace.setdefault(span.trace_id, []).append(span)
    rows = []
    for hex_id in traces:  # in id order
        if hex_id not in per_trace and hex_id not in plan.over_cap:
            continue
        spans = per_trace.get(hex_id, [])
        first = min(spans, key=lambda span: (span.start, span.span_id), default=None)
        roots = [span for span in spans if not span.parent_span_id]
        root = min(roots, key=lambda span: (span.start, span.span_id), default=None)
        rows.append({
            "id": traces[hex_id], "trace_id": hex_id, "spans": len(spans),
            "errors": sum(1 for span in spans if span.status_code == otel.ERROR),
            "first": first and first.start, "last": max((span.end for span in spans),
                                                        default=None),
            "root_start": root and root.start, "root_name": root and root.name,
            "root_service": root and root.service, "first_name": first and first.name,
            "first_service": first and first.service, "capped": hex_id in plan.over_cap})
    return _json_text(rows)


_BATCH = """json_to_recordset(%(batch)s::json) AS b(id bigint, trace_id text, spans integer,
    errors integer, first numeric, last numeric, root_start numeric, root_name text,
    root_service text, first_name text, first_service text, capped boolean)"""


# --- PostgreSQL: two or three round trips, the spans as one JSON text --------------------------

# The services the spans name, for the service picker (traces/service_names.py).
_SERVICES = service_names.INSERT.format("%(services)s")

# A new trace's row is made whole (as the batch makes it); then every row of the batch's traces
# is locked, in id order. The made ones come back from RETURNING: the others existed.
_NEW_TRACES = """
INSERT INTO "traces_trace" ("id", "trace_id", "project", "status", "created", "updated",
    "group_id", "end_group_id", "integer_timestamps", "name", "service", "span_count",
    "event_count", "unfinished_span_count", "problems", "last_seq", "error_count", "start",
    "end", "duration", "root_start")
SELECT b.id, b.trace_id, %(project)s, 'open', %(now)s, %(now)s, '', '', true,
    COALESCE(b.root_name, b.first_name, ''), COALESCE(b.root_service, b.first_service, ''),
    b.spans, 0, 0, CASE WHEN b.capped THEN jsonb_build_array(%(cap_problem)s::text)
                        ELSE '[]'::jsonb END,
    0, b.errors, b.first, b.last, b.last - b.first, b.root_start
FROM """ + _BATCH + """
ON CONFLICT ("id") DO NOTHING
RETURNING "id"
"""

# Every trace's `created` as text: it only goes back to the server (the spans' partition key).
_LOCK_TRACES = """
SELECT t."id", t."trace_id", t."span_count", t."created"::text FROM "traces_trace" AS t
WHERE t."id" = ANY(%(ids)s::bigint[]) ORDER BY t."id" FOR UPDATE
"""

# The batch's spans already stored, of traces that have spans: in the partitions of the times
# their traces were received (a trace's spans are `received` when it was `created`).
_STORED = """
SELECT s."trace_id", s."group_id" FROM "traces_span" AS s
WHERE s."trace_id" = ANY(%(ids)s::bigint[]) AND s."group_id" = ANY(%(span_ids)s::text[])
    AND s."received" = ANY(%(received)s::timestamptz[])
"""

# The row of each trace that existed follows what was stored. Its name and service are its root
# span's once the root has arrived, the earliest span's before.
_UPDATE_TRACES = """
UPDATE "traces_trace" AS t SET
    "span_count" = t."span_count" + b.spans,
    "error_count" = t."error_count" + b.errors,
    "start" = LEAST(t."start", b.first),
    "end" = GREATEST(t."end", b.last),
    "duration" = GREATEST(t."end", b.last) - LEAST(t."start", b.first),
    "name" = CASE WHEN t."root_start" IS NOT NULL THEN t."name"
                  WHEN b.root_name IS NOT NULL THEN b.root_name
                  WHEN b.first < t."start" OR t."start" IS NULL THEN b.first_name
                  ELSE t."name" END,
    "service" = CASE WHEN t."root_start" IS NOT NULL THEN t."service"
                     WHEN b.root_name IS NOT NULL THEN b.root_service
                     WHEN b.first < t."start" OR t."start" IS NULL THEN b.first_service
                     ELSE t."service" END,
    "root_start" = COALESCE(t."root_start", b.root_start),
    "problems" = CASE WHEN b.capped THEN jsonb_build_array(%(cap_problem)s::text)
                      ELSE t."problems" END,
    "status" = CASE WHEN b.spans > 0 THEN 'open' ELSE t."status" END,
    "completed" = CASE WHEN b.spans > 0 THEN NULL ELSE t."completed" END,
    "updated" = CASE WHEN b.spans > 0 THEN %(now)s ELSE t."updated" END
FROM """ + _BATCH + """
WHERE t."id" = b.id
"""


def _write_postgresql(traces: dict, spans: list, now, project) -> _Plan:
    return in_one_transaction(
        lambda begin, commit: _postgresql_steps(traces, spans, now, project, begin, commit))


def _postgresql_steps(traces, spans, now, project, begin: str, commit: str) -> _Plan:
    """1. make the rows of new traces (whole, as if every trace were new) and lock every trace's
    row; 2. only for traces that existed and had spans: which of the batch's are stored;
    3. insert the new spans, update the rows of the traces that existed, and commit."""
    # As if every trace were new: the batch's spans, each once, up to the cap.
    fresh = _plan(traces, spans, {row: (hex_id, 0) for hex_id, row in traces.items()}, set())
    params = {"now": now, "project": project,
              "cap_problem": over_cap_problem()}
    with connection.wrap_database_errors, psycopg.ClientCursor(connection.connection) as cursor:
        # One query string: BEGIN, the services, the new traces' rows and every row's lock.
        cursor.execute(begin + _SERVICES + ";\n" + _NEW_TRACES + ";\n" + _LOCK_TRACES, {
            "batch": _batch(traces, fresh), "ids": list(traces.values()),
            "services": sorted({span.service for span in spans}), **params})
        if begin:
            cursor.nextset()  # past BEGIN's result
        cursor.nextset()  # past the services' INSERT
        made = {row for (row,) in cursor.fetchall()}
        cursor.nextset()
        rows, received = {}, {}  # the rows of traces that existed; every trace's `created`
        for row, hex_id, count, created in cursor.fetchall():
            received[row] = created
            if row not in made:
                rows[row] = (hex_id, count)
        plan = fresh
        if rows:  # traces that existed: their spans planned against what is stored
            existed = {hex_id: row for hex_id, row in traces.items() if row not in made}
            stored = set()
            had_spans = {hex_id for hex_id, row in existed.items()
                         if rows.get(row, ("", 0))[0] == hex_id and rows[row][1]}
            if had_spans:
                ids = [traces[hex_id] for hex_id in had_spans]
                cursor.execute(_STORED, {"ids": ids, "received": sorted(
                    {received[row] for row in ids}), "span_ids": sorted(
                    {span.span_id for span in spans if span.trace_id in had_spans})})
                stored = set(cursor.fetchall())
            later = _plan(existed, [span for span in spans if span.trace_id in existed], rows,
                          stored)
            plan = _Plan([span for span in fresh.spans if span.trace_id not in existed]
                         + later.spans, later.collided,
                         {**{key: n for key, n in fresh.over_cap.items() if key not in existed},
                          **later.over_cap})
        # The spans and the rows of the traces that existed, with COMMIT: one round trip, a
        # pipeline of statements whose parameters are bound by the server (the spans' JSON text,
        # hundreds of kilobytes, is neither quoted by the driver nor scanned by the server's
        # parser as a literal).
        statements, values = [], dict(params)
        if plan.spans:
            statements.append(_INSERT_SPANS)
            values["spans"], values["resources"] = _spans_json(traces, plan.spans, received)
        if rows:
            statements.append(_UPDATE_TRACES)
            values["batch"] = _batch(existed, _Plan(later.spans, set(), later.over_cap))
        if statements or commit:
            pipeline([(sql, values) for sql in statements] + ([("COMMIT", None)] if commit
                                                              else []))
    return plan


# The spans as one JSON array of rows, expanded by the server (one JSON text of the whole batch
# costs the server process a fraction of a row-by-row COPY: the process's one core is the
# limit of the ingest path, PostgreSQL's parse of the text runs beside it). A span's resource is
# an index into a second array (a batch's spans share a few resources); a span is received
# when its trace was (the partition key, Span.received).
_INSERT_SPANS = f"""
INSERT INTO "traces_span" ({_COLUMNS}, "received")
SELECT (r->>0)::bigint, r->>1, r->>1, r->>2, r->>3, r->>4, (r->5)::smallint, (r->6)::numeric,
    (r->7)::numeric, (r->8)::smallint, r->>9, NULLIF(r->10, 'null'),
    %(resources)s::jsonb -> (r->>11)::integer, NULLIF(r->12, 'null'), NULLIF(r->13, 'null'),
    (r->>14)::timestamptz
FROM jsonb_array_elements(%(spans)s::jsonb) AS r"""


def _spans_json(traces: dict, spans: list[otel.OtelSpan], received: dict) -> tuple[str, str]:
    """(the spans' rows, in _INSERT_SPANS' order, the resources they name), as JSON texts;
    `received`: row id -> its trace's `created`, as PostgreSQL's text."""
    resources: dict[int, int] = {}  # id() of a resource -> its index in `listed`
    listed: list[dict] = []
    rows = []
    for s in spans:
        index = None
        if s.resource:
            index = resources.get(id(s.resource))
            if index is None:
                index = resources[id(s.resource)] = len(listed)
                listed.append(s.resource)
        row = traces[s.trace_id]
        rows.append((row, s.span_id, s.parent_span_id, s.name, s.service, s.kind, s.start, s.end,
                     s.status_code, s.status_message, s.attributes or None, index,
                     s.events or None, s.links or None, received[row]))
    return _json_text(rows), _json_text(listed)


# --- SQLite (and any other database): a few statements ------------------------------------------

def _write_sqlite(traces: dict, spans: list, now, project) -> _Plan:
    stamp = connection.ops.adapt_datetimefield_value(now)
    project = Trace._meta.get_field("project").get_db_prep_value(project, connection)
    with transaction.atomic(), connection.cursor() as cursor:
        service_names.remember(span.service for span in spans)
        cursor.executemany(
            'INSERT INTO "traces_trace" ("id", "trace_id", "project", "status", "created", '
            '"updated", "group_id", "end_group_id", "integer_timestamps", "name", "service", '
            '"span_count", "event_count", "unfinished_span_count", "problems", "last_seq", '
            '"error_count") '
            "VALUES (%s, %s, %s, 'open', %s, %s, '', '', 1, '', '', 0, 0, 0, '[]', 0, 0) "
            'ON CONFLICT ("id") DO NOTHING',
            [(row, hex_id, project, stamp, stamp) for hex_id, row in traces.items()])
        ids = list(traces.values())
        rows = {}
        for first in range(0, len(ids), 900):  # SQLite's 999 parameters
            chunk = ids[first:first + 900]
            cursor.execute('SELECT "id", "trace_id", "span_count" FROM "traces_trace" WHERE "id" '
                           f"IN ({', '.join(['%s'] * len(chunk))})", chunk)
            rows.update((row, (hex_id, count)) for row, hex_id, count in cursor.fetchall())
        stored = set()
        span_ids_of: dict[str, set] = {}
        for span in spans:
            span_ids_of.setdefault(span.trace_id, set()).add(span.span_id)
        for hex_id, row in traces.items():
            if rows.get(row, ("", 0))[1]:
                span_ids = sorted(span_ids_of[hex_id])
                for first in range(0, len(span_ids), 900):
                    chunk = span_ids[first:first + 900]
                    cursor.execute(
                        'SELECT "trace_id", "group_id" FROM "traces_span" WHERE "trace_id" = %s '
                        f"AND \"group_id\" IN ({', '.join(['%s'] * len(chunk))})", [row, *chunk])
                    stored.update(cursor.fetchall())
        plan = _plan(traces, spans, rows, stored)
        cursor.executemany(
            f'INSERT INTO "traces_span" ({_COLUMNS}) VALUES (' + ", ".join(["%s"] * 15) + ")",
            [(*row[:7], str(row[7]), str(row[8]), *row[9:])
             for row in _span_rows(traces, plan.spans)])
        # Each touched trace's state from its stored spans (SQLite is the small, local case).
        touched = {span.trace_id for span in plan.spans}
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
            WHERE "id" = %s""", [(stamp, traces[hex_id]) for hex_id in touched])
        cursor.executemany('UPDATE "traces_trace" SET "duration" = "end" - "start" '
                           'WHERE "id" = %s', [(traces[hex_id],) for hex_id in touched])
        cursor.executemany('UPDATE "traces_trace" SET "problems" = %s WHERE "id" = %s',
                           [(json.dumps([over_cap_problem()]), traces[hex_id])
                            for hex_id in plan.over_cap])
    return plan


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


def complete_quiet_traces() -> int:
    """Store `complete` on the traces now_complete() finds (the complete_quiet_traces job, every
    minute), completed when their quiet period ended; how many. A batch writing to such a trace
    at the same moment holds its row's lock: on PostgreSQL the UPDATE waits and re-checks the
    row, which that batch left open with a new `updated`, so it is skipped."""
    quiet = timedelta(seconds=settings.TRACE_OTLP_QUIET_SECONDS)
    return Trace.objects.filter(now_complete()).update(status=COMPLETE,
                                                       completed=F("updated") + quiet)


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
