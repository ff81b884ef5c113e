"""Summary API latency with millions of stored requests (PostgreSQL).

    .venv/bin/python bench/tracking_summary.py [--rows 1000000] [--days 7] [--samples 40]
    .venv/bin/python bench/tracking_summary.py --rows 10000000      # the figure in the docs

A fresh database gets `--rows` raw requests spread over `--days` (20 views, lognormal latencies,
some 4xx/5xx), generated inside PostgreSQL with one INSERT ... SELECT generate_series (a bulk
insert, no Python per row); the per-view minute, hour and day rollups and the all-views series
rollups are then built from them in SQL with the same bucket formula as tracking.aggregation.
One daphne process serves the API
(DASHBOARDS_PUBLIC on). Baseline in the same run: GET /healthz (a SELECT 1). Target: p95 under
150 ms for the summary at 10 million requests.
"""

import statistics
import time

import requests
from harness import options
from tracking_benchdb import bench_database

from plumbing.devserver import Server
from tracking import aggregation as agg

GENERATE = """
INSERT INTO tracking_requestmetric (project_id, received_at, duration_ms, method, path, query,
    view_name, status_code, session_id, user_agent, client_ip, response_size, headers)
SELECT %(project)s, now() - random() * make_interval(days => %(days)s),
       exp(ln(25) + 0.9 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())),
       'GET', '/view/' || v || '/', '', 'view_' || v,
       CASE WHEN r < 0.01 THEN 500 WHEN r < 0.05 THEN 404 ELSE 200 END,
       '', 'bench', NULL, 1000, '{}'::jsonb
FROM (SELECT (random() * 19)::int AS v, random() AS r FROM generate_series(1, %(rows)s)) s
"""

ROLLUP = """
INSERT INTO tracking_requestrollup (project_id, period_seconds, period_start, view_name, count,
    client_errors, server_errors, duration_sum_ms, histogram)
SELECT project_id, %(period)s, start, view_name, sum(n), sum(c4), sum(c5), sum(s),
       jsonb_object_agg(b, n)
FROM (
  SELECT project_id, date_trunc(%(unit)s, received_at, 'UTC') AS start, view_name,
         LEAST(GREATEST(ceil(ln(duration_ms) / ln(%(gamma)s)) - %(offset)s, 0), %(last)s)::int AS b,
         count(*) AS n, count(*) FILTER (WHERE status_code BETWEEN 400 AND 499) AS c4,
         count(*) FILTER (WHERE status_code >= 500) AS c5, sum(duration_ms) AS s
  FROM tracking_requestmetric GROUP BY 1, 2, 3, 4
) cells GROUP BY project_id, start, view_name
"""


# The all-views cells of the series: the per-view minute or hour cells summed over views.
SERIES = """
INSERT INTO tracking_requestseriesrollup (project_id, period_seconds, period_start, count,
    client_errors, server_errors, duration_sum_ms, histogram)
SELECT project_id, period_seconds, period_start, sum(count), sum(client_errors),
       sum(server_errors), sum(duration_sum_ms), jsonb_object_agg(b, n)
FROM (
  SELECT project_id, period_seconds, period_start, b, sum(n::bigint) AS n,
         sum(count) FILTER (WHERE first) AS count,
         sum(client_errors) FILTER (WHERE first) AS client_errors,
         sum(server_errors) FILTER (WHERE first) AS server_errors,
         sum(duration_sum_ms) FILTER (WHERE first) AS duration_sum_ms
  FROM (SELECT r.*, e.key AS b, e.value AS n, e.ordinality = 1 AS first
        FROM tracking_requestrollup r,
             jsonb_each_text(r.histogram) WITH ORDINALITY AS e(key, value, ordinality)
        WHERE r.period_seconds = %(period)s) cells
  GROUP BY 1, 2, 3, 4
) buckets GROUP BY 1, 2, 3
"""


def fill(url, rows, days):
    import json

    import psycopg
    from tracking_benchdb import manage

    created = json.loads(manage(url, "create_project", "Bench"))
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as connection:
        project = connection.execute("SELECT id FROM tracking_project").fetchone()[0]
        chunk = 1_000_000
        for done in range(0, rows, chunk):
            connection.execute(GENERATE, {"project": project, "days": days,
                                          "rows": min(chunk, rows - done)})
        generated = time.monotonic()
        for period, unit in ((60, "minute"), (3600, "hour"), (86400, "day")):
            connection.execute(ROLLUP, {"period": period, "unit": unit, "gamma": agg.GAMMA,
                                        "offset": agg._OFFSET, "last": agg.BUCKET_COUNT - 1})
        for period in (60, 3600):
            connection.execute(SERIES, {"period": period})
        connection.execute("ANALYZE")
    print(f"generated {rows} requests in {generated - started:.0f} s, rollups in "
          f"{time.monotonic() - generated:.0f} s")
    return created["id"]


def measure(url, samples, params=None):
    session = requests.Session()
    session.get(url, params=params, timeout=60)  # warm
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        response = session.get(url, params=params, timeout=60)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.text[:300]
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], response.json()


def main():
    args = options(__doc__, rows=1_000_000, days=7, samples=40)
    with bench_database() as db:
        project_id = fill(db, args.rows, args.days)
        server = Server({"DATABASE_URL": db, "DASHBOARDS_PUBLIC": "True", "SECRET_KEY":
                         "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"}).start()
        try:
            base50, base95, _ = measure(server.url + "/healthz", args.samples)
            summary = f"{server.url}/api/tracking/projects/{project_id}/summary/"
            print(f"Summary API, {args.rows} stored requests over {args.days} days, 20 views, "
                  f"{args.samples} sequential GETs each, one daphne process")
            print(f"{'query':<22} {'p50 ms':>8} {'p95 ms':>8} {'p95/healthz':>12} {'count':>10}")
            print(f"{'/healthz (baseline)':<22} {base50:8.1f} {base95:8.1f} {1:12.1f}")
            for label, params in (("all time (default)", None), ("last 7d", {"last": "7d"}),
                                  ("last 24h", {"last": "24h"}), ("last 1h", {"last": "1h"})):
                p50, p95, body = measure(summary, args.samples, params)
                print(f"{label:<22} {p50:8.1f} {p95:8.1f} {p95 / base95:12.1f} {body['count']:10d}")
            requests_url = f"{server.url}/api/tracking/projects/{project_id}/requests/"
            p50, p95, _ = measure(requests_url, 10, {"last": "1h", "status": "5xx"})
            print(f"{'requests list 1h 5xx':<22} {p50:8.1f} {p95:8.1f} {p95 / base95:12.1f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
