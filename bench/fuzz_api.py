"""REST fuzzing at length: the CI harness (trace_project/tests/test_fuzz_api.py) with many more
examples, against a real daphne process on a PostgreSQL database of its own.

For every operation of /api/schema/, positive, negative then hostile cases (valid requests with
one value replaced by a NUL, a lone surrogate, a 1 MB string, a 401-digit number, a date near
year 1...: test_fuzz_api.HOSTILE_VALUES); prints per operation the cases
run, distinct failures (new ones, with a curl line to reproduce) and cases that hit a known bug,
and the time per case beside GET /healthz timed the same way in the same run.

    .venv/bin/python bench/fuzz_api.py                       # 200 examples per operation and mode
    .venv/bin/python bench/fuzz_api.py --examples 1000 --only traces
    BENCH_DATABASE_URL=postgres://user:pw@db:5432/ .venv/bin/python bench/fuzz_api.py

The database fuzz_bench_<pid> is created, migrated and dropped by the script. Exit status 1 when
a new failure was found.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def psql(base_url, sql):
    subprocess.run(["psql", base_url + "postgres", "-qc", sql], check=True,
                   stdout=subprocess.DEVNULL)


def healthz_seconds(url, count):
    import requests

    session = requests.Session()
    started = time.perf_counter()
    for _ in range(count):
        session.get(url + "/healthz", timeout=10).raise_for_status()
    return (time.perf_counter() - started) / count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200,
                        help="examples per operation and mode (default 200)")
    parser.add_argument("--only", default="", help="only operations whose path contains this")
    parser.add_argument("--seed", type=int, default=None, help="derandomize with this seed")
    args = parser.parse_args()

    base = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/")
    database = f"fuzz_bench_{os.getpid()}"
    env = {"DATABASE_URL": base + database, "DEBUG": "False",
           "SECRET_KEY": "fuzz-bench-key-0123456789-abcdefghijklmnopqrstuvwxyz",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "STATIC_MANIFEST": "False"}
    os.environ.pop("DB_DEFAULT", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.update(env)
    psql(base, f"CREATE DATABASE {database}")
    server = None
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trace_project.settings")
        django.setup()
        from plumbing.devserver import Server
        from trace_project.tests.test_fuzz_api import (
            KNOWN_BUGS,
            MODES,
            OPERATIONS,
            build_world,
            fuzz_operation,
            load_schema,
        )

        server = Server(env).start()
        world = build_world(server.url)
        schema = load_schema(server.url)
        healthz_seconds(server.url, 20)  # warm up
        baseline = healthz_seconds(server.url, 200)
        print(f"server {server.url}, database {database}, {args.examples} examples per "
              f"operation and mode; baseline GET /healthz {baseline * 1000:.2f} ms")
        print(f"{'operation':58} {'mode':8} {'cases':>6} {'ms/case':>8} {'x healthz':>9} "
              f"{'new':>4} {'known':>6}")
        total_cases = total_seconds = 0
        new_failures, known = [], {}
        for key in OPERATIONS:
            if args.only and args.only not in key:
                continue
            for mode in MODES:
                result = fuzz_operation(schema, world, key, mode, args.examples, seed=args.seed)
                per_case = result.seconds / result.cases if result.cases else 0
                total_cases += result.cases
                total_seconds += result.seconds
                hits = sum(result.known.values())
                for name, count in result.known.items():
                    known[name] = known.get(name, 0) + count
                new_failures += [(key, mode, title, repro) for title, repro in result.failures]
                note = " (nothing to generate)" if result.unsatisfiable else ""
                print(f"{key:58} {mode:8} {result.cases:6d} {per_case * 1000:8.2f} "
                      f"{per_case / baseline if baseline else 0:9.1f} "
                      f"{len(result.failures):4d} {hits:6d}{note}", flush=True)
        print(f"\ncases run: {total_cases} in {total_seconds:.1f} s "
              f"({total_seconds / max(total_cases, 1) * 1000:.2f} ms per case, "
              f"{total_seconds / max(total_cases, 1) / baseline:.1f}x GET /healthz)")
        print(f"new failures: {len(new_failures)}")
        for name, count in sorted(known.items()):
            print(f"known bug {name}: {count} cases ({KNOWN_BUGS[name][2]})")
        for key, mode, title, repro in new_failures:
            print(f"\n--- {key} [{mode}] {title}\n{repro}")
        return 1 if new_failures else 0
    finally:
        if server is not None:
            server.stop()
        from django.db import connections

        connections.close_all()
        psql(base, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


if __name__ == "__main__":
    sys.exit(main())
