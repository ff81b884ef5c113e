"""Benchmark: the HTTP floor of the ingest path against Django's hello world, per ASGI server.

For each server (daphne and uvicorn, as plumbing.serve starts them), in the same run and
minute: bench/hello_project (Django 5.2, one view, no middleware) under that server is the
baseline; against it, the project under the same server on PostgreSQL + Redis, answering
- `POST /tm_api/test_start/` with a malformed JSON body and a valid machine token: the 400 of
  the ingest path (the issue's target: at least 0.7 x hello world);
- `POST /tm_api/test_start/` with a JSON body missing fields: a 400 after the token's lookup and
  rate check, in the write thread: the whole request machinery of a report without its write;
- `POST /tracking/<id>` with a malformed body: the legacy tracker route, same kind of 400;
- `GET /healthz` and `GET /no-such-page` (a 404 through the full stack), for information.
8 clients, each on one keep-alive connection, one request at a time; rounds are interleaved
(hello, ingest, ... again) so that the machine's noise falls on all alike. Prints req/s, the
server's CPU per request (from /proc) and the ratio to hello world.

    .venv/bin/python bench/http_floor.py [--seconds 3] [--rounds 3]
        [--servers daphne,uvicorn]

Creates and drops its own database bench_floor_<pid>. Env: BENCH_PG (default
postgres://postgres@127.0.0.1:5432), BENCH_REDIS_DB (default 13).
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from harness import server_env  # noqa: E402

from plumbing import serve  # noqa: E402 (sys.path set above)
from plumbing.devserver import Server, free_port  # noqa: E402 (sys.path set above)

CLIENTS = 8
MALFORMED = b'{"machine_name": "m1", "file_path": '
TICKS = os.sysconf("SC_CLK_TCK")


def psql(sql, pg):
    subprocess.run(["psql", pg + "/postgres", "-qc", sql], check=True, capture_output=True)


def cpu_seconds(pid) -> float:
    """User + system CPU of a process and its children so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICKS


def server_pids(process) -> list[int]:
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    kids = [int(p) for p in children.read_text().split()] if children.exists() else []
    return [process.pid, *kids]


class HelloServer:
    def __init__(self, server):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="bench.hello_project.settings")
        argv = serve.command(server, "127.0.0.1", self.port,
                             application="bench.hello_project.asgi:application")
        self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("hello world server did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


async def load(url, method, path, body, headers, seconds, expected):
    done = 0
    deadline = time.monotonic() + seconds

    async def client():
        nonlocal done
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            while time.monotonic() < deadline:
                async with session.request(method, url + path, data=body,
                                           headers=headers) as response:
                    await response.read()
                    assert response.status == expected, (path, response.status)
                done += 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return done, time.monotonic() - started


def measure(target, pid_of, case, seconds):
    method, path, body, headers, expected = case
    before = sum(cpu_seconds(p) for p in pid_of())
    done, elapsed = asyncio.run(load(target, method, path, body, headers, seconds, expected))
    cpu = sum(cpu_seconds(p) for p in pid_of()) - before
    return done / elapsed, cpu / max(done, 1) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", default="daphne,uvicorn")
    args = parser.parse_args()
    pg = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    database = f"bench_floor_{os.getpid()}"
    psql(f"CREATE DATABASE {database}", pg)
    # The token's bucket is checked in Redis on every report, never empty here.
    env = server_env(f"{pg}/{database}", RATE_LIMIT_MACHINE_TOKEN="1000000")
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT,
                       env={**os.environ, **env}, check=True)
        token = subprocess.run([sys.executable, "manage.py", "machine_token", "create", "bench"],
                               cwd=ROOT, env={**os.environ, **env}, check=True,
                               capture_output=True, text=True).stdout.strip().splitlines()[-1]
        json_headers = {"Content-Type": "application/json"}
        cases = {
            "ingest 400 (test_start, malformed body)": (
                "POST", "/tm_api/test_start/", MALFORMED,
                {**json_headers, "Authorization": f"Token {token}"}, 400),
            "ingest 400 after token + rate (bad field)": (
                "POST", "/tm_api/test_start/", b'{"machine_name": "m1"}',
                {**json_headers, "Authorization": f"Token {token}"}, 400),
            "legacy tracker route 400 (malformed body)": (
                "POST", "/tracking/00000000-0000-0000-0000-000000000000", MALFORMED,
                json_headers, 400),
            "/healthz": ("GET", "/healthz", None, {}, 200),
            "404 page": ("GET", "/no-such-page", None, {}, 404),
        }
        for name in args.servers.split(","):
            hello = HelloServer(name)
            project = Server(env, server=name, access_log=False).start()
            try:
                hello_case = ("GET", "/", None, {}, 200)
                results = {"hello world (no middleware)": []}
                results.update({case: [] for case in cases})
                for _ in range(args.rounds):
                    results["hello world (no middleware)"].append(measure(
                        hello.url, lambda: server_pids(hello.process), hello_case, args.seconds))  # noqa: B023 (called at once)
                    for case, spec in cases.items():
                        results[case].append(measure(
                            project.url, lambda: server_pids(project.process), spec,  # noqa: B023 (called at once)
                            args.seconds))
            finally:
                project.stop()
                hello.stop()
            base = statistics.median(r for r, _ in results["hello world (no middleware)"])
            print(f"\n{name}: {CLIENTS} keep-alive clients, {args.rounds} rounds of "
                  f"{args.seconds:g} s, medians")
            for case, figures in results.items():
                rate = statistics.median(r for r, _ in figures)
                cpu = statistics.median(c for _, c in figures)
                print(f"  {case:42s} {rate:8.0f} req/s  {cpu:5.2f} ms CPU/req  "
                      f"{rate / base:5.2f} x hello world")
    finally:
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", pg)


if __name__ == "__main__":
    main()
