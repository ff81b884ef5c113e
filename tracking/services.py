"""Request metrics: the one ingest path for every wire format, summaries from rollups, clean-up.

Views and commands call these functions; the rules themselves (validation of each wire format,
scrubbing, histograms) live in the pure modules wire.py, scrub.py and aggregation.py.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Max, Min, Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from plumbing import partitions
from plumbing.jsonio import database_json
from plumbing.pg_transaction import in_one_transaction
from plumbing.sorting import Sorting
from plumbing.tokens import FoundByDigest, token_digest
from tracking import aggregation as agg
from tracking.live import publish_requests_after_commit
from tracking.models import (
    Project,
    RequestMetric,
    RequestRollup,
    RequestSeriesRollup,
    RequestSpan,
)
from tracking.wire import RequestEvent

logger = logging.getLogger(__name__)

RAW_COLUMNS = [
    "project_id", "received_at", "duration_ms", "method", "path", "query", "view_name",
    "status_code", "session_id", "user_agent", "client_ip", "response_size", "headers",
    "trace_id", "span_id",
]
# Rows per INSERT of the requests that carry a span id (SQLite takes 32,766 parameters).
KEYED_CHUNK = 500
ROLLUP_CHUNK = 500  # cells per upsert statement (9 parameters each)


# --- projects and tokens ------------------------------------------------------------------------

# Projects found by their token's digest, each kept PROJECT_TOKEN_CACHE_SECONDS.
found_projects = FoundByDigest(lambda: settings.PROJECT_TOKEN_CACHE_SECONDS)


def project_for_token(token: str) -> Project | None:
    """The project a batch token belongs to. Looked up by digest (the token has 256 random bits,
    so its digest is a safe key; kept a few seconds, found_projects); the final comparison is
    constant-time."""
    if not token:
        return None
    project = found_projects.get(token_digest(token), lambda digest: Project.objects.filter(
        token_digest=digest).first())
    return project if project is not None and project.token_matches(token) else None


@receiver([post_save, post_delete], sender=Project)
def _forget_project(sender, instance, **kwargs):
    found_projects.forget(instance.pk)


def rotate_token(project: Project) -> str:
    token = project.issue_token()
    project.save(update_fields=["token_digest", "token_hint", "token_rotated_at"])
    return token


# --- ingest -------------------------------------------------------------------------------------

def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def ingest_events(project: Project, events: list[RequestEvent], dropped_by_client: int = 0) -> int:
    """Store `events` (already parsed and scrubbed by tracking.wire) and add them to the minute
    and hour rollups in one transaction; the live page hears about them after commit.

    A request with a span id (the tracker saw the app's OpenTelemetry span, or the event was
    made from an OpenTelemetry SERVER span) is stored and counted once per project, trace id and
    span id, whichever source reports it first: a later report of it is accepted and skipped.
    Returns the number of events accepted (stored now or before)."""
    if not events and not dropped_by_client:
        return 0
    write = _write_postgresql if connection.vendor == "postgresql" else _write_atomic
    for attempt in range(3):
        try:
            stored = write(project, events, dropped_by_client)
            break
        except OperationalError as error:
            # Concurrent upserts of the same rollup cells may deadlock on PostgreSQL; one of
            # them is rolled back and simply tries again.
            if "deadlock" not in str(error).lower() or attempt == 2:
                raise
            logger.info("rollup deadlock, retrying batch of %d", len(events))
    if stored:
        publish_requests_after_commit(project, len(stored), max(e.timestamp for e in stored))
    return len(events)


def _write_atomic(project: Project, events: list[RequestEvent], dropped_by_client: int):
    """The write on SQLite (and any database but PostgreSQL); returns the events stored now."""
    with transaction.atomic():
        stored = _insert_raw(project, events) if events else []
        with connection.cursor() as cursor:
            for sql, params in _rollup_statements(project, stored) + _dropped_statement(
                    project, dropped_by_client):
                cursor.execute(sql, params)
    return stored


def _dropped_statement(project: Project, dropped_by_client: int) -> list[tuple[str, list]]:
    if not dropped_by_client:
        return []
    return [(f"UPDATE {Project._meta.db_table} SET dropped_by_clients = dropped_by_clients + %s "
             "WHERE id = %s", [dropped_by_client, project.pk])]


def _raw_row(project_id: int, e: RequestEvent, headers=json.dumps) -> tuple:
    """The event's values in RAW_COLUMNS' order, its headers as headers(e.headers) (JSON text
    by default)."""
    return (
        project_id, _utc(e.timestamp), e.duration_ms, e.method, e.path, e.query, e.view_name,
        e.status_code, e.session_id, e.user_agent, e.client_ip, e.response_size,
        headers(e.headers), e.trace_id, e.span_id,
    )


def _insert_raw(project: Project, events: list[RequestEvent]) -> list[RequestEvent]:
    """Store the raw rows; returns the events stored now (those of requests already stored
    under the same trace and span id are not)."""
    if any(e.span_id is not None for e in events):
        keyed = [e for e in events if e.span_id is not None]
        plain = [e for e in events if e.span_id is None]
        _insert_plain(project, plain)
        return plain + _insert_once(project, keyed)
    _insert_plain(project, events)
    return events


def _first_of_each_key(events: list[RequestEvent]) -> dict[tuple, RequestEvent]:
    """The first event of each (trace id, span id), in key order: concurrent batches insert
    overlapping keys in the same order (waiting rather than deadlocking; a deadlock would be
    retried by ingest_events all the same)."""
    first: dict[tuple, RequestEvent] = {}
    for event in sorted(events, key=lambda e: (e.trace_id, e.span_id)):
        first.setdefault((event.trace_id, event.span_id), event)
    return first


def _insert_once(project: Project, events: list[RequestEvent]) -> list[RequestEvent]:
    """Insert requests that carry a span id, skipping any (project, trace id, span id) already
    stored: the key goes into RequestSpan first (its unique constraint; a concurrent insert of
    the same key waits for the other transaction and is then skipped), and only the requests
    whose key went in are stored. Returns them."""
    first = _first_of_each_key(events)
    adapt = connection.ops.adapt_datetimefield_value
    rows = [(project.pk, trace_id, span_id, adapt(_utc(event.timestamp)))
            for (trace_id, span_id), event in first.items()]
    inserted: set[tuple] = set()
    table = RequestSpan._meta.db_table
    with connection.cursor() as cursor:
        for start in range(0, len(rows), KEYED_CHUNK):
            chunk = rows[start:start + KEYED_CHUNK]
            cursor.execute(
                f"INSERT INTO {table} (project_id, trace_id, span_id, received_at) VALUES "
                + ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
                + " ON CONFLICT DO NOTHING RETURNING trace_id, span_id",
                [value for row in chunk for value in row],
            )
            inserted.update(map(tuple, cursor.fetchall()))
    stored = [event for key, event in first.items() if key in inserted]
    _insert_plain(project, stored)
    return stored


def _insert_plain(project: Project, events: list[RequestEvent]) -> None:
    if not events:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            _copy_plain(cursor.cursor, project, events)
        return
    # Elsewhere (SQLite) one prepared INSERT run for every row: far quicker than bulk_create's
    # SQL compilation per chunk of rows.
    adapt = connection.ops.adapt_datetimefield_value
    rows = [(p, adapt(t), *rest) for p, t, *rest in (_raw_row(project.pk, e) for e in events)]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {RequestMetric._meta.db_table} ({', '.join(RAW_COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(RAW_COLUMNS))})",
            rows,
        )


def _copy_plain(cursor, project: Project, events: list[RequestEvent]) -> None:
    """PostgreSQL: the raw rows by COPY, several times faster than a multi-row INSERT for
    thousands of rows."""
    with cursor.copy(f"COPY {RequestMetric._meta.db_table} ({', '.join(RAW_COLUMNS)}) "
                     "FROM STDIN") as copy:
        for event in events:
            copy.write_row(_raw_row(project.pk, event))


# --- PostgreSQL: the batch in two round trips (one more for COPY) -------------------------------

# The requests with a span id, each stored once: the keys that go into RequestSpan (in key
# order) are those of the raw rows inserted, in the same statement; the keys stored come back.
_INSERT_KEYED = f"""
WITH b AS (SELECT * FROM json_populate_recordset(NULL::{RequestMetric._meta.db_table}, %s::json)),
keys AS (INSERT INTO {RequestSpan._meta.db_table} (project_id, trace_id, span_id, received_at)
    SELECT project_id, trace_id, span_id, received_at FROM b ORDER BY trace_id, span_id
    ON CONFLICT DO NOTHING RETURNING trace_id, span_id),
raw AS (INSERT INTO {RequestMetric._meta.db_table} ({", ".join(RAW_COLUMNS)})
    SELECT {", ".join(f"b.{column}" for column in RAW_COLUMNS)} FROM b JOIN keys USING (trace_id, span_id))
SELECT trace_id, span_id FROM keys"""


def _keyed_json(project_id: int, events) -> str:
    rows = []
    for event in events:  # the headers as they are: database_json below writes the whole text
        row = dict(zip(RAW_COLUMNS, _raw_row(project_id, event, headers=dict), strict=True))
        row["received_at"] = row["received_at"].isoformat()
        rows.append(row)
    return database_json(rows)


def _write_postgresql(project: Project, events: list[RequestEvent], dropped_by_client: int):
    """The write on PostgreSQL: BEGIN with the keyed requests' statement, the rollups and the
    counter with COMMIT (plus COPY for requests without a span id): two round trips where
    Django's transaction took five or more. Returns the events stored now."""
    return in_one_transaction(lambda begin, commit: _postgresql_steps(
        project, events, dropped_by_client, begin, commit))


def _postgresql_steps(project, events, dropped_by_client, begin: str, commit: str):
    keyed = _first_of_each_key([e for e in events if e.span_id is not None])
    plain = [e for e in events if e.span_id is None]
    stored: list[RequestEvent] = []
    with connection.wrap_database_errors, psycopg.ClientCursor(connection.connection) as cursor:
        if plain:
            if begin:  # COPY is a round trip of its own
                cursor.execute(begin.rstrip(";\n"))
                begin = ""
            _copy_plain(cursor, project, plain)
            stored += plain
        if keyed:
            cursor.execute(begin + _INSERT_KEYED, [_keyed_json(project.pk, keyed.values())])
            if begin:
                cursor.nextset()  # past BEGIN's result
                begin = ""
            inserted = set(map(tuple, cursor.fetchall()))
            stored += [event for key, event in keyed.items() if key in inserted]
        statements = (_rollup_statements(project, stored)
                      + _dropped_statement(project, dropped_by_client))
        if statements:
            cursor.execute(begin + ";\n".join(sql for sql, _ in statements) + commit,
                           [value for _, params in statements for value in params])
        elif commit and not begin:  # a transaction is open: nothing was stored but the keys
            cursor.execute("COMMIT")
    return stored


def _rollup_statements(project: Project, events: list[RequestEvent]) -> list[tuple[str, list]]:
    """The statements that add `events` to the per-view cells (minute, hour, day) and to the
    all-views series cells (minute, hour) they touch."""
    facts = [(e.timestamp, e.view_name, e.duration_ms, e.status_code) for e in events]
    per_view: dict[tuple[int, datetime, str], agg.Cell] = {}
    series: dict[tuple[int, datetime], agg.Cell] = {}
    for period in (RequestRollup.MINUTE, RequestRollup.HOUR, RequestRollup.DAY):
        for (start, view), cell in agg.rollup_cells(facts, period).items():
            moment = _utc(start)
            per_view[(period, moment, view)] = cell
            if period != RequestRollup.DAY:
                series.setdefault((period, moment), agg.Cell()).merge(cell)
    # Always this table order, and sorted cells within each, so concurrent batches wait for each
    # other instead of deadlocking.
    return (_upsert_cells(RequestRollup, project.pk, per_view)
            + _upsert_cells(RequestSeriesRollup, project.pk, series))


# A cell's stored histogram plus the batch's, bucket by bucket (both JSON objects of bucket ->
# count), in the database's own JSON functions.
_MERGED_HISTOGRAM = {
    "postgresql": (
        "(SELECT COALESCE(jsonb_object_agg(key, total), '{{}}'::jsonb) FROM ("
        "SELECT key, SUM(value::bigint)::bigint AS total FROM ("
        "SELECT * FROM jsonb_each_text({table}.histogram) UNION ALL "
        "SELECT * FROM jsonb_each_text(EXCLUDED.histogram)) AS buckets GROUP BY key) AS sums)"),
    "sqlite": (
        "(SELECT COALESCE(json_group_object(key, total), '{{}}') FROM ("
        "SELECT key, SUM(value) AS total FROM ("
        "SELECT key, value FROM json_each({table}.histogram) UNION ALL "
        "SELECT key, value FROM json_each(EXCLUDED.histogram)) GROUP BY key))"),
}


def _upsert_cells(model, project_id: int, fresh: dict) -> list[tuple[str, list]]:
    """The statements (sql, params) that add the `fresh` cells, keyed (period, start, view)
    (RequestRollup) or (period, start) (RequestSeriesRollup), to the stored ones: INSERT ... ON
    CONFLICT DO UPDATE adds counts, sums and histogram buckets in the database, so a batch costs
    one round trip and holds its row locks from it to its commit only (the cells of the current
    minute are every batch's: a read-merge-write took four round trips under lock).

    The rows go in key order, so concurrent batches lock shared cells in the same order and wait
    for each other instead of deadlocking; on SQLite the IMMEDIATE transaction already
    serialises writers.
    """
    if not fresh:
        return []
    with_view = model is RequestRollup
    table = model._meta.db_table
    key_columns = ["project_id", "period_seconds", "period_start"] + (
        ["view_name"] if with_view else [])
    vendor = connection.vendor
    adapt = connection.ops.adapt_datetimefield_value
    json_value = "%s::jsonb" if vendor == "postgresql" else "%s"
    placeholders = ", ".join(["%s"] * len(key_columns)) + f", %s, %s, %s, %s, {json_value}"
    rows = [[project_id, key[0], adapt(key[1]), *key[2:], fresh[key].count,
             fresh[key].client_errors, fresh[key].server_errors, fresh[key].duration_sum_ms,
             json.dumps(fresh[key].histogram)] for key in sorted(fresh)]
    histogram = _MERGED_HISTOGRAM["postgresql" if vendor == "postgresql" else "sqlite"]
    # Chunks in key order (the lock order holds across them), within the parameters a statement
    # may take (Django's figure for SQLite is 999).
    size = min(ROLLUP_CHUNK, (connection.features.max_query_params or 10**6) // len(rows[0]))
    chunks = [rows[first:first + size] for first in range(0, len(rows), size)]
    return [(f"INSERT INTO {table} ({', '.join(key_columns)}, count, client_errors, "
             "server_errors, duration_sum_ms, histogram) VALUES "
             + ", ".join([f"({placeholders})"] * len(chunk))
             + f" ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET "
             f"count = {table}.count + EXCLUDED.count, "
             f"client_errors = {table}.client_errors + EXCLUDED.client_errors, "
             f"server_errors = {table}.server_errors + EXCLUDED.server_errors, "
             f"duration_sum_ms = {table}.duration_sum_ms + EXCLUDED.duration_sum_ms, "
             f"histogram = {histogram.format(table=table)}",
             [value for row in chunk for value in row])
            for chunk in chunks]


# --- reading ------------------------------------------------------------------------------------

@dataclass
class Window:
    since: datetime
    until: datetime

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _ceil_minute(moment: datetime) -> datetime:
    floored = _floor_minute(moment)
    return floored if floored == moment else floored + timedelta(minutes=1)


def resolve_window(project: Project, since: datetime | None, until: datetime | None) -> Window:
    """Whole minutes covering [since, until); no `since` means from the first stored request.

    A window never ends after the current minute: nothing is stored in the future."""
    now = _ceil_minute(timezone.now())
    until = min(_ceil_minute(until), now) if until else now
    if since is None:
        first = project.rollups.filter(period_seconds=RequestRollup.MINUTE).aggregate(
            first=Min("period_start"))["first"]
        since = first or until - timedelta(hours=1)
    since = min(_floor_minute(since), until - timedelta(minutes=1))
    return Window(since, until)


def summarize(project: Project, window: Window) -> dict:
    """Counts, error rates and percentiles over the window, per view, and as a time series:
    all from rollups, so the cost depends on the window and the number of views, not on the
    number of stored requests.

    Per-view figures come from day cells in the middle of the window, hour cells next to them and
    minute cells at the edges; the series from the all-views cells (one row per point). Where the
    project has no data before (after) the window, its edge is moved out to a whole day for the
    reading, which changes no figure and replaces minute cells by fewer, larger ones: so the
    default all-time window reads about one row per view and day plus one per hour.
    """
    since, until = int(window.since.timestamp()), int(window.until.timestamp())
    step = agg.choose_step(until - since)
    read_since, read_until = since, until
    stored = RequestRollup.objects.filter(project_id=project.pk, period_seconds=60).aggregate(
        first=Min("period_start"), last=Max("period_start"))
    if stored["first"] is not None:
        if stored["first"].timestamp() >= since:
            read_since = agg.floor_to(since, RequestRollup.DAY)
        if stored["last"].timestamp() + 60 <= until:
            read_until = -(-until // RequestRollup.DAY) * RequestRollup.DAY
    by_view: dict[str, agg.Cell] = {}
    by_point: dict[int, agg.Cell] = {}
    if stored["first"] is not None:
        levels = (RequestRollup.DAY, RequestRollup.HOUR, RequestRollup.MINUTE)
        for view, count, client_errors, server_errors, duration_sum, histogram in (
            _cells(RequestRollup, project, read_since, read_until, levels)
            .values_list("view_name", "count", "client_errors", "server_errors",
                         "duration_sum_ms", "histogram")
        ):
            by_view.setdefault(view, agg.Cell()).merge(
                agg.Cell(count, client_errors, server_errors, duration_sum, histogram))
        levels = ((RequestRollup.HOUR, RequestRollup.MINUTE) if step >= RequestRollup.HOUR
                  else (RequestRollup.MINUTE,))
        for start, count, client_errors, server_errors, duration_sum, histogram in (
            _cells(RequestSeriesRollup, project, read_since, read_until, levels)
            .values_list("period_start", "count", "client_errors", "server_errors",
                         "duration_sum_ms", "histogram")
        ):
            by_point.setdefault(agg.floor_to(start.timestamp(), step), agg.Cell()).merge(
                agg.Cell(count, client_errors, server_errors, duration_sum, histogram))
    total = agg.Cell()
    for cell in by_view.values():
        total.merge(cell)
    series = []
    # Points start where the project's data does: a window reaching back decades must not make
    # the series hundreds of thousands of empty points long.
    first = project.rollups.aggregate(first=Min("period_start"))["first"]
    series_since = (max(since, int(first.timestamp())) if first is not None
                    else max(since, until - 3600))
    for point in range(agg.floor_to(series_since, step), until, step):
        stats = (by_point.get(point) or agg.Cell()).stats()
        del stats["mean_ms"]
        series.append({"start": _utc(point), **stats})
    views = [{"view_name": view, **cell.stats()} for view, cell in by_view.items()]
    views.sort(key=lambda v: (-v["count"], v["view_name"]))
    return {
        "project": project.public_id,
        "since": window.since,
        "until": window.until,
        **total.stats(),
        "requests_per_minute": total.count / (window.seconds / 60),
        "views": views,
        "series": {"step_seconds": step, "points": series},
    }


def _cells(model, project: Project, since: int, until: int, levels: tuple[int, ...]):
    """The cells of `model` that exactly cover [since, until) with the given rollup levels."""
    match = Q(pk__in=[])
    for period, start, end in agg.cover_levels(since, until, levels):
        match |= Q(period_seconds=period, period_start__gte=_utc(start),
                   period_start__lt=_utc(end))
    return model.objects.filter(match, project_id=project.pk)


# The orders of the requests table: ?sort=time, ?sort=-duration... (newest first by default).
REQUEST_SORTING = Sorting({
    "time": "received_at", "method": "method", "path": "path", "view": "view_name",
    "status": "status_code", "duration": "duration_ms",
}, default="-time")


def filter_requests(project: Project, *, since=None, until=None, path=None, status=None,
                    view=None, min_duration_ms=None, method=None, sort=None, trace_id=None):
    """Raw requests of a project, newest first unless `sort` (a ?sort= value of
    REQUEST_SORTING) says otherwise. `status` is a code (404) or a class ("5xx")."""
    requests = RequestMetric.objects.filter(project_id=project.pk)
    if since is not None:
        requests = requests.filter(received_at__gte=since)
    if until is not None:
        requests = requests.filter(received_at__lt=until)
    if path:
        requests = requests.filter(path__startswith=path)
    if view is not None:
        requests = requests.filter(view_name=view)
    if method:
        requests = requests.filter(method=method.upper())
    if status:
        if isinstance(status, str) and status.endswith("xx"):
            low = int(status[0]) * 100
            requests = requests.filter(status_code__gte=low, status_code__lt=low + 100)
        else:
            requests = requests.filter(status_code=int(status))
    if min_duration_ms is not None:
        requests = requests.filter(duration_ms__gte=min_duration_ms)
    if trace_id:
        requests = requests.filter(trace_id=trace_id.lower())
    order = REQUEST_SORTING.parse(sort) or REQUEST_SORTING.default
    return requests.order_by(*order.order_by)


def project_overview(projects) -> list[dict]:
    """Last 24 hours of each project, for the project list: the window of the project page's
    "24h" (whole minutes, up to the current one), so both pages show the same figures; hour cells
    in the middle, minute cells at the edges."""
    until = _ceil_minute(timezone.now())
    since = _floor_minute(until - timedelta(hours=24))
    return window_totals(projects, Window(since, until))


def window_totals(projects, window: Window) -> list[dict]:
    """Each project's figures (count, error rate, percentiles) over a window of whole minutes,
    read from the all-views cells of every project at once: hour cells in the middle, minute
    cells at the edges."""
    since, until = int(window.since.timestamp()), int(window.until.timestamp())
    match = Q(pk__in=[])
    for period, start, end in agg.cover_levels(since, until, (RequestRollup.HOUR,
                                                              RequestRollup.MINUTE)):
        match |= Q(period_seconds=period, period_start__gte=_utc(start),
                   period_start__lt=_utc(end))
    totals = {p.pk: agg.Cell() for p in projects}
    for project_id, count, client_errors, server_errors, duration_sum, histogram in (
        RequestSeriesRollup.objects.filter(match, project__in=list(totals))
        .values_list("project_id", "count", "client_errors", "server_errors",
                     "duration_sum_ms", "histogram")
    ):
        totals[project_id].merge(agg.Cell(count, client_errors, server_errors, duration_sum,
                                          histogram))
    return [{"project": p, **totals[p.pk].stats()} for p in projects]


# --- retention ----------------------------------------------------------------------------------

def prune_raw_requests(older_than_days: int | None = None, batch_size: int = 50_000) -> int:
    """Delete raw requests older than the retention period. On PostgreSQL the table is
    partitioned by day (plumbing/partitions.py): whole days past the retention are dropped, and
    rows are deleted only in the day that straddles the cutoff (the count of a dropped day is
    PostgreSQL's estimate). On SQLite, rows are deleted in batches so that no transaction holds
    locks for long. Rollups are kept: the dashboard's history outlives the raw rows."""
    days = settings.TRACKING_RAW_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    _prune_request_spans(cutoff, batch_size)
    return partitions.prune(RequestMetric._meta.db_table, "received_at", cutoff,
                            batch_size=batch_size).rows


def _prune_request_spans(cutoff, batch_size: int) -> None:
    """The once-only keys of requests as old as the raw rows that go (a report of one of those
    requests arriving later would be counted again, as any request that old would be)."""
    old = RequestSpan.objects.filter(received_at__lt=cutoff)
    while True:
        ids = list(old.values_list("id", flat=True)[:batch_size])
        if not ids:
            return
        RequestSpan.objects.filter(id__in=ids).delete()


def compact_rollups(older_than_days: int | None = None, batch_size: int = 20_000) -> int:
    """Delete per-minute rollup cells (per view and all-views) older than
    TRACKING_MINUTE_ROLLUP_DAYS, in batches. Hour and day cells hold the same counts and
    histograms, so only the resolution of old windows drops (to whole hours)."""
    days = settings.TRACKING_MINUTE_ROLLUP_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    for model in (RequestRollup, RequestSeriesRollup):
        old = model.objects.filter(period_seconds=RequestRollup.MINUTE, period_start__lt=cutoff)
        while True:
            ids = list(old.values_list("id", flat=True)[:batch_size])
            if not ids:
                break
            deleted += model.objects.filter(id__in=ids).delete()[0]
    return deleted

