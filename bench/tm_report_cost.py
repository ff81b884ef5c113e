"""Benchmark: server CPU and SQL statements per machine report (test_start/test_stop), service
and live frames only: no HTTP, no request machinery.

Creates and drops its own PostgreSQL database (bench_tm_cost_<pid>), or uses SQLite with
--sqlite. Frames go to an event loop in a thread of this process, as on the server (in-memory
channel layer, no socket). For each run size, posts a dry run, then starts and stops every test
through tm_api.services, and prints CPU per report (process time, every thread) and the
round trips of one start and one stop (with their statements), beside a baseline measured in
the same run: one transaction that locks the test row and updates it (the least a report can cost).
On a PostgreSQL server of this machine it also prints the CPU its backend (the connection's
server process, read from /proc) spent per report and per baseline transaction.

    .venv/bin/python bench/tm_report_cost.py [--tests 60 600] [--sqlite]

Env: BENCH_PG (default postgres://postgres@127.0.0.1:5432).
"""

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import own_database  # noqa: E402 (the bench folder is on sys.path when run)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, nargs="+", default=[60, 600])
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    with own_database(f"bench_tm_cost_{os.getpid()}", args.sqlite):
        run(args)


def run(args):
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from plumbing import publisher
    from tm_api import services
    from tm_api.models import Test
    from tm_api.status import parse_client_timestamp

    call_command("migrate", "-v0")
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    publisher.serve_on(loop)  # as the server's write threads do

    def dry_run(name, count):
        tests = [{"file_path": "/b", "file_name": f"t{n:04d}.py", "script": "pass\n" * 20}
                 for n in range(count)]
        services.record_dry_run(name, parse_client_timestamp("2024-01-01 00:00:00"), {
            "file_path": "/b", "file_name": "master.py", "script": "", "scenarios": [
                {"file_path": "/b", "file_name": f"s{k}.py", "script": "", "tests": tests[k::4]}
                for k in range(4)]})

    def statements(call):
        with CaptureQueriesContext(connection) as captured:
            call()
        # One entry per round trip; statements sent together (PostgreSQL) joined by "+".
        return ["+".join(sql.split()[0] for sql in q["sql"].split(";\n"))
                for q in captured.captured_queries
                if not q["sql"].startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))]

    database_cpu = _backend_cpu(connection) if not args.sqlite else None

    backend = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"{backend}, in-process (no HTTP); load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    for count in args.tests:
        name = f"bench-{count}"
        dry_run(name, count)
        pks = list(Test.objects.filter(machine__machine_name=name).values_list("pk", flat=True))
        started, database_started = time.process_time(), database_cpu and database_cpu()
        for pk in pks:
            with transaction.atomic():
                Test.objects.select_for_update().filter(pk=pk).first()
                Test.objects.filter(pk=pk).update(status="waiting")
        baseline = (time.process_time() - started) / len(pks) * 1000
        database_baseline = database_cpu and (database_cpu() - database_started) / len(pks) * 1000
        start = statements(lambda: services.start_test(name, "/b", "t0000.py"))  # noqa: B023 (called at once)
        stop = statements(lambda: services.stop_test(name, "/b", "t0000.py", "passed"))  # noqa: B023 (called at once)
        started, database_started = time.process_time(), database_cpu and database_cpu()
        for n in range(1, count):
            services.start_test(name, "/b", f"t{n:04d}.py")
            services.stop_test(name, "/b", f"t{n:04d}.py", "passed")
        per_report = (time.process_time() - started) / (2 * (count - 1)) * 1000
        print(f"run of {count:4d} tests: {per_report:5.2f} ms CPU per report "
              f"= {per_report / baseline:.1f} x baseline ({baseline:.2f} ms: lock and update "
              f"one test row); round trips (statements): start {len(start)} {start}, "
              f"stop {len(stop)}")
        if database_cpu:
            database = (database_cpu() - database_started) / (2 * (count - 1)) * 1000
            print(f"{'':19}PostgreSQL backend: {database:5.2f} ms CPU per report "
                  f"= {database / database_baseline:.1f} x baseline ({database_baseline:.2f} ms)")


def _backend_cpu(connection):
    """A function giving the CPU seconds the connection's PostgreSQL backend has used, or None
    when that process is not on this machine (its /proc entry is missing or not PostgreSQL's)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    stat = Path(f"/proc/{pid}/stat")
    try:
        if "postgres" not in Path(f"/proc/{pid}/cmdline").read_text():
            return None
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu():
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    return cpu


if __name__ == "__main__":
    main()
