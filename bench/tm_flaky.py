"""Benchmark: tests across runs on a suite of thousands of tests: the flaky list, a test's
history, a comparison of two runs and the `new_flaky_test` check when a run ends.

Creates and drops its own PostgreSQL database (bench_tm_flaky_<pid>), or uses SQLite with
--sqlite. Stores `--runs` runs of `--tests` tests through tm_api.services.apply_reports (as a
machine's batches would): a few tests flip at random, a few always fail, the rest pass. Then
times each read (best of 5) beside a baseline measured in the same process and minute: reading
every result of the window's runs (identity, run, status: what a judgement without the
"failed at least once" filter would read), and prints the plans of the history and flaky
queries on PostgreSQL.

    .venv/bin/python bench/tm_flaky.py [--tests 2000] [--runs 20] [--sqlite]

Env: BENCH_PG (default postgres://postgres@127.0.0.1:5432).
"""

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import own_database  # noqa: E402 (the bench folder is on sys.path when run)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    with own_database(f"bench_tm_flaky_{os.getpid()}", args.sqlite):
        run(args)


def best_of(call, times=5):
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - started)
    return best, result


def run(args):
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from tm_api import history, services
    from tm_api.models import Run, Test

    rng = random.Random(16)
    names = [(f"tests/test_mod{n // 50}.py", f"test_case_{n}") for n in range(args.tests)]
    flipping = set(rng.sample(range(args.tests), max(1, args.tests // 50)))
    broken = set(rng.sample(range(args.tests), max(1, args.tests // 100)))
    started = time.perf_counter()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for r in range(args.runs):
        when = t0 + timedelta(hours=r)
        tree = {"file_path": "/ci", "file_name": "pytest", "script": "", "scenarios": [
            {"file_path": "tests", "file_name": f"test_mod{m}.py", "script": "",
             "tests": [{"file_path": p, "file_name": n, "script": ""}
                       for p, n in names[m * 50:(m + 1) * 50]]}
            for m in range((args.tests + 49) // 50)]}
        reports = [(services.DRY_RUN, {"timestamp": when, "master_scenario": tree,
                                       "commit": f"c{r // 2}", "branch": "main"})]
        for n, (path, name) in enumerate(names):
            status = ("failed" if n in broken
                      else rng.choice(["passed", "failed"]) if n in flipping else "passed")
            reports.append((services.TEST_START, {"file_path": path, "file_name": name,
                                                  "timestamp_start": when}))
            reports.append((services.TEST_STOP, {"file_path": path, "file_name": name,
                                                 "status": status,
                                                 "timestamp_stop": when + timedelta(seconds=n % 7)}))
        services.apply_reports("bench-rack", reports)
    print(f"{connection.vendor}: {args.runs} runs x {args.tests} tests stored in "
          f"{time.perf_counter() - started:.1f} s ({Test.objects.count()} test rows; "
          f"{len(flipping)} flip at random, {len(broken)} always fail)")

    since = history.window_start()

    def baseline():
        return list(Test.objects.filter(master_scenario__run__received__gte=since,
                                        status__in=("passed", "failed", "error"))
                    .values_list("identity_key", "master_scenario__run_id", "status"))

    base, rows = best_of(baseline)
    print(f"baseline: read every result of the window ({len(rows)} rows): {base * 1000:.1f} ms")
    flaky_time, flaky = best_of(history.flaky_tests)
    print(f"flaky tests ({len(flaky)} found): {flaky_time * 1000:.1f} ms = "
          f"{flaky_time / base:.2f} x baseline")
    key = Test.objects.filter(file_name=names[next(iter(flipping))][1]).values_list(
        "identity_key", flat=True).first()
    history_time, results = best_of(lambda: history.history(key, 50))
    print(f"one test's history ({len(results)} results): {history_time * 1000:.2f} ms = "
          f"{history_time / base:.3f} x baseline")
    last, before = Run.objects.order_by("-timestamp")[:2]
    compare_time, found = best_of(lambda: history.compare_runs(before, last))
    print(f"compare two runs ({sum(len(v) for k, v in found.items() if k != 'duration_changes')}"
          f" changed): {compare_time * 1000:.1f} ms = {compare_time / base:.2f} x baseline")
    master = last.master_scenario
    end_time, _ = best_of(lambda: history.window_results(since, last))
    print(f"the run-end check's read (new_flaky_test): {end_time * 1000:.1f} ms = "
          f"{end_time / base:.2f} x baseline (run of {master.tests_count} tests)")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for title, queryset in (
                    ("history", Test.objects.filter(identity_key=key).order_by("-id")[:50]),
                    ("flaky window", None)):
                if queryset is None:
                    sql, params = _flaky_sql(history, since)
                else:
                    sql, params = queryset.query.sql_with_params()
                cursor.execute("EXPLAIN " + sql, params)
                plan = [row[0] for row in cursor.fetchall()]
                print(f"plan of the {title} query:")
                for line in plan[:14]:
                    print("   ", line)


def _flaky_sql(history, since):
    from django.db.models import Q

    from tm_api.models import Test

    in_window = Test.objects.filter(master_scenario__run__received__gte=since)
    suspects = in_window.filter(Q(status__in=("failed", "error"))
                                | Q(result__passed_on_retry=True))
    query = in_window.filter(status__in=("passed", "failed", "error"),
                             identity_key__in=suspects.values("identity_key")).values_list(
        "identity_key", "master_scenario__run_id", "status")
    return query.query.sql_with_params()


if __name__ == "__main__":
    main()
