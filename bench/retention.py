"""Retention of millions of spans on PostgreSQL: prune_old_data's traces step against deleting
the same rows from an unpartitioned copy of the table.

    flock /tmp/bench.lock .venv/bin/python bench/retention.py [--spans 10000000] [--per_trace 20]
        [--days 10] [--straddling 100000] [--kept 200000] [--baseline_spans 10000000]

A fresh database (created, migrated, dropped after) holds the table as after weeks of use: one
partition per day (the one the migration made for the rows before it is dropped, and days are
made for the past 41 days). It gets `--spans` spans in traces of `--per_trace` spans, past the
retention window (TRACE_RETENTION_DAYS, 30): all but `--straddling` of them in the `--days` days
wholly before the day that holds the cutoff, the rest in that day before the cutoff; and
`--kept` spans that must stay (in that day after the cutoff, and today). Rows are generated inside
PostgreSQL (INSERT ... SELECT generate_series), not through the API.

Measured: traces.jobs.prune_traces() (the step of prune_old_data), its parts, and then what it left.
Baseline in the same run: the same spans copied into a plain table with the same indexes (as the
table was before partitioning), then one `DELETE ... WHERE received < cutoff` of the spans past the
window (the fastest a row delete gets: one statement, no batches, no Django). With
`--baseline_spans` below `--spans`, only that many are copied and deleted, and the time is
extrapolated linearly to `--spans` (printed as such).
"""

import os
import sys
import time
from datetime import timedelta

from harness import options
from tracking_benchdb import ROOT, bench_database

TRACES = """
INSERT INTO traces_trace (id, trace_id, status, created, updated, completed, start, "end",
    duration, group_id, end_group_id, integer_timestamps, name, root_start, service, span_count,
    event_count, unfinished_span_count, problems, last_seq, error_count)
SELECT g, lpad(to_hex(g), 32, '0'), 'complete', at, at, at, 1e18, 1e18 + 1e9, 1e9, '', '', true,
    'GET /checkout', 1e18, 'shop', %(per_trace)s, 0, 0, '[]', 0, 0
FROM (SELECT g, %(lower)s::timestamptz + (g - %(first)s) * (%(upper)s::timestamptz
        - %(lower)s::timestamptz) / %(count)s AS at
      FROM generate_series(%(first)s, %(first)s + %(count)s - 1) AS g) AS made
"""

SPANS = """
INSERT INTO traces_span (trace_id, received, group_id, span_id, parent_span_id, name, service,
    kind, start, "end", status_code, status_message, attributes)
SELECT t.id, t.created, lpad(to_hex(s), 16, '0'), lpad(to_hex(s), 16, '0'),
    CASE WHEN s = 1 THEN '' ELSE lpad(to_hex(s / 2), 16, '0') END, 'span ' || (s %% 7), 'shop',
    2, 1e18 + s * 1000, 1e18 + s * 1000 + 500, 0, '', '{"http.route": "/checkout"}'::jsonb
FROM traces_trace AS t, generate_series(1, %(per_trace)s) AS s
WHERE t.id BETWEEN %(first)s AND %(first)s + %(count)s - 1
"""


def main():
    args = options(__doc__, spans=10_000_000, per_trace=20, days=10, straddling=100_000,
                   kept=200_000, baseline_spans=10_000_000)
    with bench_database(prefix="bench_retention") as url:
        os.environ.update({"DATABASE_URL": url, "DEBUG": "True", "ENV_FILE": ""})
        os.environ.pop("DB_DEFAULT", None)
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trace_project.settings")
        import django

        django.setup()
        run(args)


def run(args):
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from plumbing import partitions
    from traces import jobs
    from traces.jobs import prune_traces

    now = timezone.now()
    cutoff = now - timedelta(days=settings.TRACE_RETENTION_DAYS)
    cutoff_day = partitions.boundary(cutoff)
    with connection.cursor() as cursor:
        # The table as after weeks of use: a partition per day, back to before the oldest rows.
        for partition in partitions.partitions("traces_span"):
            if partition.lower is None and not partition.default:
                cursor.execute(f'DROP TABLE "{partition.name}"')
        made = partitions.create_ahead(now=cutoff_day - timedelta(days=args.days + 1),
                                       days=args.days + settings.TRACE_RETENTION_DAYS + 10,
                                       tables=["traces_span"])
        print(f"{len(made)} daily partitions of traces_span made")

        whole = args.spans - args.straddling
        groups = [  # (spans, from, to, kept)
            (whole, cutoff_day - timedelta(days=args.days), cutoff_day, False),
            (args.straddling, cutoff_day, cutoff, False),
            (args.kept // 2, cutoff + timedelta(minutes=30), cutoff_day + timedelta(days=1), True),
            (args.kept - args.kept // 2, now - timedelta(hours=12), now, True),
        ]
        started, first = time.monotonic(), 1
        for spans, lower, upper, _ in groups:
            count = spans // args.per_trace
            for offset in range(0, count, 50_000):  # a chunk at a time: progress, short statements
                chunk = min(50_000, count - offset)
                chunk_lower = lower + (upper - lower) * offset / count
                chunk_upper = lower + (upper - lower) * (offset + chunk) / count
                params = {"first": first + offset, "count": chunk, "lower": chunk_lower,
                          "upper": chunk_upper, "per_trace": args.per_trace}
                cursor.execute(TRACES, params)
                cursor.execute(SPANS, params)
            first += count
        cursor.execute("ANALYZE traces_span")
        cursor.execute("ANALYZE traces_trace")
        cursor.execute("SELECT count(*), count(*) FILTER (WHERE received < %s) FROM traces_span",
                       [cutoff])
        total, old = cursor.fetchone()
        cursor.execute("SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) "
                       "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "WHERE i.inhparent = 'traces_span'::regclass")
        size = cursor.fetchone()[0]
        print(f"filled in {time.monotonic() - started:.0f} s: {total:,} spans ({size}), "
              f"{old:,} of them past the retention window, in {first - 1:,} traces")

        # Baseline: the same spans in a plain table (as before partitioning), deleted by row.
        sample = min(args.baseline_spans, total)
        started = time.monotonic()
        cursor.execute("CREATE TABLE bench_plain_span (LIKE traces_span INCLUDING DEFAULTS)")
        cursor.execute("INSERT INTO bench_plain_span SELECT * FROM traces_span "
                       "ORDER BY received LIMIT %s", [sample])
        for columns, unique in (("id", True), ("trace_id, group_id", True), ("trace_id", False),
                                ("name", False)):
            cursor.execute(f"CREATE {'UNIQUE' if unique else ''} INDEX ON bench_plain_span "
                           f"({columns})")
        cursor.execute("ANALYZE bench_plain_span")
        cursor.execute("SELECT count(*) FROM bench_plain_span WHERE received < %s", [cutoff])
        baseline_rows = cursor.fetchone()[0]
        print(f"baseline table: {sample:,} spans copied and indexed in "
              f"{time.monotonic() - started:.0f} s")
        cursor.execute("CHECKPOINT")
        started = time.monotonic()
        cursor.execute("DELETE FROM bench_plain_span WHERE received < %s", [cutoff])
        baseline = time.monotonic() - started
        cursor.execute("DROP TABLE bench_plain_span")
        cursor.execute("CHECKPOINT")

    def timed(module, name, into):  # module.name, timed into the list `into` while it runs
        function = getattr(module, name)

        def wrapper(*args, **kwargs):
            began = time.monotonic()
            try:
                return function(*args, **kwargs)
            finally:
                into.append(time.monotonic() - began)

        setattr(module, name, wrapper)
        return function

    dropping, locked, removed, rows = [], [], [], []
    originals = [(partitions, "drop_partitions_before",
                  timed(partitions, "drop_partitions_before", dropping)),
                 (partitions, "_detach", timed(partitions, "_detach", locked)),
                 (partitions, "_drop_detached", timed(partitions, "_drop_detached", removed)),
                 (jobs, "_delete_rows", timed(jobs, "_delete_rows", rows))]
    started = time.monotonic()
    deleted_traces = prune_traces()
    elapsed = time.monotonic() - started
    for module, name, function in originals:
        setattr(module, name, function)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM traces_span")
        spans_left = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM traces_trace")
        traces_left = cursor.fetchone()[0]
        cursor.execute('SELECT count(*) FROM traces_span s WHERE NOT EXISTS '
                       '(SELECT 1 FROM traces_trace t WHERE t.id = s.trace_id)')
        orphans = cursor.fetchone()[0]

    print(f"\nprune_traces(): {elapsed:.3f} s for {old:,} spans and {deleted_traces:,} traces "
          f"(cutoff {cutoff:%Y-%m-%d %H:%M} UTC)")
    print(f"  the span partitions wholly past the window dropped: {sum(dropping):.3f} s; "
          f"meanwhile, on a thread, the trace rows (and their events) and the spans of the "
          f"straddling day deleted: {sum(rows):.3f} s")
    print(f"  the span table's exclusive lock (detaching the partitions) was held "
          f"{sum(locked):.3f} s; dropping the detached partitions (removing their files) took "
          f"{sum(removed):.3f} s")
    print(f"left: {spans_left:,} spans (expected {total - old:,}), {traces_left:,} traces, "
          f"{orphans} spans without their trace")
    if baseline_rows == old:
        print(f"baseline, DELETE of the same {old:,} spans from a plain table: {baseline:.3f} s")
        scaled = baseline
    else:
        scaled = baseline * old / baseline_rows
        print(f"baseline, DELETE of {baseline_rows:,} of these spans from a plain table: "
              f"{baseline:.3f} s, extrapolated linearly to {old:,}: {scaled:.1f} s")
    print(f"ratio: retention with partitions takes {elapsed / scaled:.4f} x the row delete "
          f"({scaled / elapsed:.0f} times faster)")
    ok = spans_left == total - old and orphans == 0
    print("target: 10 million spans under a second:",
          "met" if elapsed < 1 and old >= 10_000_000 and ok else "NOT met" if ok else "WRONG RESULT",
          "(the whole step, files removed)")


if __name__ == "__main__":
    main()
