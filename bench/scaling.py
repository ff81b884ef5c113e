"""Benchmark: machine reports (test_start + test_stop) against 1 and then 2 server processes.

8 machines (one request at a time each, as real machines; each with its own machine token)
post test_start and test_stop on PostgreSQL + Redis, first to one server process, then to two,
in the same run. Each machine announces a dry run of 60 tests first and again after every 120
reports (not timed). Prints req/s, p50/p99 per request, the server's CPU per request (from
/proc) and the ratio 2-process/1-process.

The two processes run as production runs them with WEB_CONCURRENCY=2 (plumbing.serve): each
accepts on a listening socket of its own on the port (SO_REUSEPORT), and the kernel hands each new
connection to one of them by a hash of its addresses. No balancer process: on a 2-core machine a
proxy in the middle would take CPU from the servers and measure itself. With 8 keep-alive
machines the split is per connection, so by chance it is 4/4 only about a quarter of the time
(5/3 or 6/2 the rest, mostly); the per-process CPU shows how even it was, and the machine's busy
cores (all processes, from /proc/stat) and PostgreSQL's CPU per request show whether the machine
itself was the limit.

    .venv/bin/python bench/scaling.py [--seconds 15] [--machines 8]
        [--server uvicorn|daphne]

Creates and drops its own database bench_scaling_<pid>. Env: BENCH_PG (default
postgres://postgres@127.0.0.1:5432), BENCH_REDIS_DB (default 13).
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The machines' runs and the percentiles are tm_live.py's, so that the two benches compare.
from harness import server_env  # noqa: E402 (sys.path set above)
from tm_live import TESTS_PER_RUN, dry_run_body, percentile, psql  # noqa: E402 (sys.path set above)

from plumbing.devserver import Server  # noqa: E402 (sys.path set above)

TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = task / "children"
        if children.exists():
            for child in children.read_text().split():
                pids.extend(process_tree(int(child)))
    return pids


def cpu_seconds(pid) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def postgres_seconds() -> float:
    """CPU of every PostgreSQL process on this machine (the server's backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    total += cpu_seconds(int(entry.name))
            except OSError:
                pass
    return total


async def machine(url, name, token, seconds, latencies, arrives_after=0.0):
    # Machines come one after the other, as they do (the kernel's hash, not their timing,
    # decides which process takes each connection).
    await asyncio.sleep(arrives_after)
    headers = {"Authorization": f"Token {token}"}
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        deadline = time.monotonic() + seconds
        done = 0
        while time.monotonic() < deadline:
            if done % (2 * TESTS_PER_RUN) == 0:
                async with session.post(url + "/tm_api/dry_run/", json=dry_run_body(name)) as r:
                    assert r.status == 201, await r.text()
            test = f"test_{(done // 2) % TESTS_PER_RUN:03d}.py"
            path = "/tm_api/test_stop/" if done % 2 else "/tm_api/test_start/"
            body = {"machine_name": name, "file_path": "/bench", "file_name": test}
            if done % 2:
                body["status"] = "passed"
            started = time.monotonic()
            async with session.post(url + path, json=body) as response:
                await response.read()
                assert response.status == 202, (path, response.status, await response.text())
            latencies.append(time.monotonic() - started)
            done += 1


def run(server, tokens, seconds):
    latencies = []
    pids = process_tree(server.process.pid)
    before = {pid: cpu_seconds(pid) for pid in pids}
    ticks, pg, client = machine_ticks(), postgres_seconds(), time.process_time()

    async def all_machines():
        await asyncio.gather(*(machine(server.url, f"bench-{n}", token, seconds, latencies,
                                       arrives_after=n * 0.05)
                               for n, token in enumerate(tokens)))

    started = time.monotonic()
    asyncio.run(all_machines())
    elapsed = time.monotonic() - started
    cpu = [cpu_seconds(pid) - before[pid] for pid in pids]
    busy, total = (after - first for after, first in zip(machine_ticks(), ticks))
    usage = {"busy cores": busy / total * os.cpu_count(), "postgres": postgres_seconds() - pg,
             "client": time.process_time() - client}
    return len(latencies) / elapsed, latencies, cpu, usage


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--machines", type=int, default=8)
    parser.add_argument("--server", default="uvicorn", choices=["uvicorn", "daphne"])
    args = parser.parse_args()
    pg = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    database = f"bench_scaling_{os.getpid()}"
    psql(f"CREATE DATABASE {database}", pg)
    env = server_env(f"{pg}/{database}")
    full_env = {**os.environ, **env}
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=full_env,
                       check=True)
        script = ("from tm_api.auth import issue_token\n"
                  f"for n in range({args.machines}): print(issue_token(f'bench {{n}}')[1])")
        tokens = subprocess.run(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", script], cwd=ROOT,
            env=full_env, check=True, capture_output=True, text=True).stdout.split()
        results = {}
        for processes in (1, 2):
            server = Server(env, server=args.server, workers=processes, access_log=False).start()
            try:
                run(server, tokens, 2)  # warm-up: connections, pools, caches
                results[processes] = run(server, tokens, args.seconds)
            finally:
                server.stop()
        print(f"\n{args.machines} machines, test_start + test_stop, {args.server}, "
              f"{args.seconds:g} s each, PostgreSQL + Redis")
        for processes, (rate, latencies, cpu, usage) in results.items():
            count = max(len(latencies), 1)
            split = " / ".join(f"{c:.1f}" for c in cpu if c > 0.05)
            print(f"  {processes} process{'es' if processes > 1 else '  '}: {rate:7.0f} req/s  "
                  f"p50 {percentile(latencies, 50) * 1000:6.1f} ms  "
                  f"p99 {percentile(latencies, 99) * 1000:6.1f} ms  "
                  f"server CPU {sum(cpu) / count * 1000:.2f} ms/req (s per process: {split}), "
                  f"PostgreSQL {usage['postgres'] / count * 1000:.2f} ms/req, load client "
                  f"{usage['client'] / count * 1000:.2f} ms/req, machine busy "
                  f"{usage['busy cores']:.1f} of {os.cpu_count()} cores")
        print(f"  ratio 2-process/1-process: {results[2][0] / results[1][0]:.2f} x")
    finally:
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", pg)


if __name__ == "__main__":
    main()
