"""Benchmark: what the pytest plugin (clients/tm_reporter) adds to a suite of fast tests.

Generates a suite of 2,000 trivial tests in a temporary directory and runs it with pytest, in
the same minute: without the plugin (the baseline), with the plugin reporting to one real
server (plumbing.devserver: uvicorn, or MONITOR_SERVER=daphne) on PostgreSQL + Redis
with a machine token, and with the plugin pointed at a server that is down. Creates and drops
its own database.

Prints each wall time, the ratio to the baseline, how many of the results arrived (counted in
the database: the run's tests that are no longer waiting or running) and the plugin's own line.
Targets (issue 13): every result arrives; the suite takes at most 1.2 x its time without the
plugin; with the server down, at most a second more.

    .venv/bin/python bench/tm_reporter.py [--tests 2000] [--rounds 2] [--finish-seconds 10]

Env: BENCH_PG (default postgres://postgres@127.0.0.1:5432), BENCH_REDIS_DB (default 13),
BENCH_DB_NAME (default bench_tm_reporter_<pid>).
"""

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from plumbing.devserver import Server, free_port  # noqa: E402 (sys.path set above)

MACHINE = "bench-suite"
CPU: dict[tuple, list[float]] = {}  # pytest's CPU seconds per session, by the plugin's arguments
PER_MODULE = 100


def psql(pg, database, sql):
    return subprocess.run(["psql", f"{pg}/{database}", "-tAqc", sql], check=True,
                          capture_output=True, text=True).stdout.strip()


def write_suite(directory: Path, count: int):
    (directory / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    for module in range(0, count, PER_MODULE):
        tests = "\n".join(f"def test_{n:05d}():\n    assert {n} == {n}\n"
                          for n in range(module, min(count, module + PER_MODULE)))
        (directory / f"test_m{module // PER_MODULE:03d}.py").write_text(tests)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_suite(directory, *plugin_args):
    """Wall seconds of one pytest session, and its tm-reporter line; the session's CPU seconds
    (its process, sender thread included) go into CPU[plugin_args]."""
    cpu = _children_cpu()
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:django", "-p", "no:randomly",
         *plugin_args], cwd=directory, capture_output=True, text=True,
        env={k: v for k, v in os.environ.items()
             if not k.startswith(("TM_", "DJANGO_", "DATABASE_", "REDIS_"))})
    elapsed = time.perf_counter() - started
    CPU.setdefault(plugin_args, []).append(_children_cpu() - cpu)
    if result.returncode != 0:
        raise RuntimeError(f"the suite failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    # The summary line (the plugin also prints the machine's and the run's pages).
    lines = [out for out in result.stdout.splitlines() if out.startswith("tm-reporter:")]
    line = next((out for out in lines if re.search(r"results sent|kept in", out)),
                lines[-1] if lines else "")
    return elapsed, line


def arrived(pg, database, tests):
    """Results of the machine's last run: (tests no longer waiting or running, still waiting)."""
    rows = psql(pg, database, f"""
        SELECT t.status, count(*) FROM tm_api_test t
        WHERE t.master_scenario_id = (
            SELECT m.id FROM tm_api_masterscenario m JOIN tm_api_run r ON m.run_id = r.id
            JOIN tm_api_machine c ON r.machine_id = c.id
            WHERE c.machine_name = '{MACHINE}' ORDER BY m.id DESC LIMIT 1)
        GROUP BY t.status""")
    counts = dict(line.split("|") for line in rows.splitlines() if line)
    counts = {status: int(n) for status, n in counts.items()}
    done = sum(n for status, n in counts.items() if status not in ("waiting", "running"))
    return done, counts.get("waiting", 0) + counts.get("running", 0), sum(counts.values())


def _wait_until_still(pg, database, tests, limit=30):
    last, deadline = None, time.monotonic() + limit
    while time.monotonic() < deadline:
        now = arrived(pg, database, tests)
        if now == last:
            return
        last = now
        time.sleep(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs of each case, interleaved; the median is reported")
    parser.add_argument("--finish-seconds", type=float, default=10,
                        help="the plugin's --tm-finish-seconds (its default is 60)")
    args = parser.parse_args()
    pg = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    redis_url = f"redis://127.0.0.1:6379/{os.environ.get('BENCH_REDIS_DB', '13')}"
    database = os.environ.get("BENCH_DB_NAME", f"bench_tm_reporter_{os.getpid()}")
    env = {"DATABASE_URL": f"{pg}/{database}", "REDIS_URL": redis_url,
           "REDIS_PREFIX": database, "SECRET_KEY": "bench-" + "x" * 50, "DEBUG": "False",
           "TM_ALLOW_ANONYMOUS_MACHINES": "False", "LOG_LEVEL": "WARNING"}
    suite = Path(tempfile.mkdtemp(prefix="tm-reporter-bench-"))
    subprocess.run(["psql", f"{pg}/postgres", "-qc", f"CREATE DATABASE {database}"], check=True,
                   capture_output=True)
    server = None
    try:
        write_suite(suite, args.tests)
        manage_env = {**os.environ, **env}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True,
                       env=manage_env)
        token = subprocess.run(
            [sys.executable, "manage.py", "machine_token", "create", "bench", "--machine",
             MACHINE], cwd=ROOT, check=True, env=manage_env, capture_output=True,
            text=True).stdout.strip()
        server = Server(env).start()
        spool = suite / "spool.jsonl"
        plugin = ["--tm-url", server.url, "--tm-machine", MACHINE, "--tm-token", token,
                  "--tm-spool", str(spool), "--tm-finish-seconds", str(args.finish_seconds)]
        down = ["--tm-url", f"http://127.0.0.1:{free_port()}", "--tm-machine", MACHINE,
                "--tm-spool", str(suite / "down.jsonl")]

        run_suite(suite)  # warm-up: imports and .pyc files
        times = {"baseline": [], "plugin": [], "down": []}
        lines = {}
        results = []
        for _ in range(args.rounds):
            (suite / "down.jsonl").unlink(missing_ok=True)
            elapsed, lines["down"] = run_suite(suite, *down)
            times["down"].append(elapsed)
            times["baseline"].append(run_suite(suite)[0])
            spool.unlink(missing_ok=True)  # each round's run on its own
            elapsed, lines["plugin"] = run_suite(suite, *plugin)
            times["plugin"].append(elapsed)
            results.append(arrived(pg, database, args.tests))
            # The server may still be applying the last batch: let it finish before the next
            # round's baseline is timed.
            _wait_until_still(pg, database, args.tests)

        base = statistics.median(times["baseline"])
        with_plugin = statistics.median(times["plugin"])
        server_down = statistics.median(times["down"])
        print(f"{args.tests} trivial tests, {args.rounds} rounds (median); one {server.server} "
              f"process, PostgreSQL + Redis, machine token; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"without the plugin:      {base:6.2f} s  "
              f"({', '.join(f'{t:.2f}' for t in times['baseline'])})")
        print(f"with the plugin:         {with_plugin:6.2f} s  = {with_plugin / base:.2f} x "
              f"baseline (target <= 1.2)  ({', '.join(f'{t:.2f}' for t in times['plugin'])})")
        after = [float(m.group(1)) if (m := re.search(r"in ([\d.]+) s after the tests", line))
                 else 0.0 for line in [lines["plugin"]]]
        print(f"  of which sending after the last test: {after[0]:.2f} s (last round); the "
              f"tests themselves: {(times['plugin'][-1] - after[0]) / base:.2f} x baseline")
        cpu = {name: statistics.median(CPU[key]) for name, key in (
            ("baseline", ()), ("plugin", tuple(plugin)), ("down", tuple(down)))}
        print(f"  pytest's own CPU (median, sender thread included): {cpu['plugin']:.2f} s "
              f"against {cpu['baseline']:.2f} s without the plugin and {cpu['down']:.2f} s with "
              "the server down; the rest of the difference is the server's and PostgreSQL's "
              "work on the same two cores")
        for n, (done, left, listed) in enumerate(results, 1):
            print(f"  round {n}: {done} of {args.tests} results arrived by the session's end, "
                  f"{left} left waiting or running, {listed} tests in the run")
        print(f"  {lines['plugin']}")
        sent, kept = (int(m.group(1).replace(",", "")) if m else 0 for m in (
            re.search(r"([\d,]+) results sent", lines["plugin"]),
            re.search(r"([\d,]+) kept in", lines["plugin"])))
        print(f"  last round: {sent} acknowledged + {kept} kept in the spool = {sent + kept} of "
              f"{args.tests} ({'none lost' if sent + kept == args.tests else 'SOME LOST'})")
        print(f"server down:             {server_down:6.2f} s  = {server_down - base:+.2f} s "
              f"against the baseline (target <= +1 s)  "
              f"({', '.join(f'{t:.2f}' for t in times['down'])})")
        print("  " + re.sub(r" kept in \S+", " kept in <spool>", lines["down"]))
    finally:
        if server:
            server.stop()
        subprocess.run(["psql", f"{pg}/postgres", "-qc",
                        f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], capture_output=True)
        shutil.rmtree(suite, ignore_errors=True)


if __name__ == "__main__":
    main()
