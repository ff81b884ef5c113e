"""Traces per second as clients of the trace websocket protocol send them: one websocket per trace.

Each of N concurrent clients (8) opens /ws/trace/<new id>, sends the whole trace as one frame (as
the protocol's documented example does), waits for the server's reply and closes; then the next
trace. Traces of 7 messages (the example's shape) and of 101 messages. One server process
(plumbing.devserver.Server) on PostgreSQL + Redis (a database bench_trace_clients_<pid> it
creates and drops, Redis db BENCH_REDIS_DB), and with --sqlite on SQLite + the in-memory layer
too. The baseline, in the same run and on the same server: the same clients against the no-op
consumer (TRACE_BENCH_NOOP: the same handshake and middleware, JSON parsed, nothing stored).
Prints traces/s, msgs/s, p50/p99 per trace (connect to reply), and stored / no-op.
The clients are one asyncio process (aiohttp), so they take little of the machine's CPU.

    .venv/bin/python bench/trace_clients.py                       # about 40 s
    .venv/bin/python bench/trace_clients.py --seconds 5 --sqlite --server uvicorn
    .venv/bin/python bench/trace_clients.py --profile /tmp/traces.prof   # cProfile the server

--server is passed to devserver.Server (uvicorn, the default, or daphne).
Env: BENCH_PG (default postgres://postgres@127.0.0.1:5432), BENCH_REDIS_DB (default 13).
"""

import argparse
import asyncio
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plumbing.devserver import Server  # noqa: E402 (sys.path set above)

STORED = "Trace stored. Closing the connection"
BASE_TS = 1_700_000_000


def trace_messages(count: int) -> list[dict]:
    """`count` messages (odd, at least 3): TRACE_START, span pairs and events, TRACE_END, in
    the shuffled order an existing client may send them (TRACE_END not last)."""
    inner = []
    n = 0
    while len(inner) < count - 2:
        if count - 2 - len(inner) == 1 or n % 3 == 2:
            inner.append({"type": "EVENT", "timestamp": BASE_TS + n + 1, "name": f"event {n}"})
        else:
            group = f"span-{n:04d}-dbed4e4e-8ec6-40dd-ae35-b118abf1ab69"
            inner.append({"type": "SPAN_END", "timestamp": BASE_TS + n + 2, "group_id": group})
            inner.append({"type": "SPAN_START", "timestamp": BASE_TS + n + 1, "group_id": group,
                          "name": f"movies_load {n % 7}"})
        n += 1
    end = BASE_TS + n + 3
    group = "e6fa79ca-d142-4046-a134-5134f16a0b5e"
    return ([{"type": "TRACE_START", "timestamp": BASE_TS, "group_id": group},
             {"type": "TRACE_END", "timestamp": end, "group_id": group}] + inner)


async def one_trace(session, url: str, frame: str) -> float:
    started = time.perf_counter()
    async with session.ws_connect(url, autoclose=True, autoping=False, heartbeat=None) as ws:
        await ws.send_str(frame)
        message = await ws.receive(timeout=30)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"no reply: {message.type} {message.data!r}")
        reply = json.loads(message.data)
        if reply.get("message") != STORED:
            raise RuntimeError(f"reply: {reply}")
        await ws.receive(timeout=30)  # the server's close
    return time.perf_counter() - started


async def run_clients(ws_url: str, path: str, frame: str, clients: int, seconds: float,
                      first_id: int):
    """(traces stored, seconds, latencies, errors) of `clients` sending traces back to back."""
    latencies, errors = [], []
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def client(number):
            trace_id = first_id + number * 10_000_000
            while time.perf_counter() < deadline:
                trace_id += 1
                try:
                    latencies.append(await one_trace(session, f"{ws_url}{path}{trace_id}", frame))
                except Exception as error:  # noqa: BLE001 - counted and shown
                    errors.append(repr(error))
                    if len(errors) > 20:
                        return

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies), elapsed, latencies, errors


def percentile(values, q):
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


class ProfiledServer(Server):
    """daphne under cProfile (stats written when it stops)."""

    profile = None

    def start(self, timeout=30):
        from plumbing.devserver import DAPHNE_OPTIONS

        self.process = subprocess.Popen(
            [sys.executable, "-m", "cProfile", "-o", self.profile, "-m", "daphne", "-b",
             "127.0.0.1", "-p", str(self.port), *DAPHNE_OPTIONS, "trace_project.asgi:application"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_healthy(timeout)
        return self


def start_server(env: dict, server_name: str | None, profile: str | None = None):
    if profile:
        ProfiledServer.profile = profile
        return ProfiledServer(env).start()
    kwargs = {}
    if server_name and "server" in inspect.signature(Server).parameters:
        kwargs["server"] = server_name
    elif server_name and server_name != "daphne":
        env = {**env, "MONITOR_SERVER": server_name}
    return Server(env, **kwargs).start()


def measure(label: str, env: dict, args, check_sql) -> None:
    server = start_server(env, args.server, args.profile)
    try:
        print(f"{label}: {args.clients} clients, one websocket per trace, "
              f"{args.seconds:g} s per run")
        print(f"  {'msgs':>5} {'consumer':<8} {'traces/s':>9} {'msgs/s':>9} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'traces':>7}  {'stored/no-op':>12}")
        first_id = 1
        for size in args.messages:
            frame = json.dumps(trace_messages(size))
            rates = {}
            for name, path in (("no-op", "/ws/bench/noop/"), ("store", "/ws/trace/")):
                asyncio.run(run_clients(server.ws_url, path, frame, 2, 0.3, first_id))  # warm up
                first_id += 100_000_000
                count, elapsed, latencies, errors = asyncio.run(run_clients(
                    server.ws_url, path, frame, args.clients, args.seconds, first_id))
                first_id += 100_000_000
                rates[name] = count / elapsed
                ratio = f"{rates[name] / rates['no-op']:.2f}" if name == "store" else ""
                print(f"  {size:>5} {name:<8} {rates[name]:>9,.0f} {rates[name] * size:>9,.0f} "
                      f"{percentile(latencies, 50) * 1e3:>7.1f} "
                      f"{percentile(latencies, 99) * 1e3:>7.1f} {count:>7}  {ratio:>12}",
                      flush=True)
                if errors:
                    print(f"    {len(errors)} error(s), first: {errors[0]}")
        print(f"  in the database: {check_sql()}")
    finally:
        server.stop()
        if args.profile:
            print(f"  server profile: {args.profile}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8, help="length of each run (8)")
    parser.add_argument("--messages", default="7,101", help="trace sizes (7,101)")
    parser.add_argument("--sqlite", action="store_true", help="also on SQLite + in-memory layer")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL + Redis")
    parser.add_argument("--server", default=None, help="ASGI server: uvicorn (the default) or daphne")
    parser.add_argument("--profile", default=None,
                        help="run the server under cProfile, stats written to this file")
    args = parser.parse_args()
    args.messages = [int(n) for n in args.messages.split(",")]
    if any(n < 3 or n % 2 == 0 for n in args.messages):
        parser.error("--messages: odd sizes of at least 3")

    common = {"TRACE_BENCH_NOOP": "True", "DEBUG": "False", "LOG_LEVEL": "WARNING",
              "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
              "STATIC_MANIFEST": "False", "WEBSOCKET_MAX_CONNECTIONS_PER_CLIENT": "0",
              "WEBSOCKET_MESSAGES_PER_SECOND": "0"}
    pg = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")
    redis_db = os.environ.get("BENCH_REDIS_DB", "13")
    migrate_env = {k: v for k, v in os.environ.items() if k not in ("DB_DEFAULT", "REDIS_URL")}

    if not args.no_postgres:
        database = f"bench_trace_clients_{os.getpid()}"
        subprocess.run(["psql", pg + "/postgres", "-qc", f"CREATE DATABASE {database}"],
                       check=True, capture_output=True)
        try:
            env = {**common, "DATABASE_URL": f"{pg}/{database}",
                   "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}"}
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True,
                           env={**migrate_env, **env})

            def check():
                out = subprocess.run(
                    ["psql", f"{pg}/{database}", "-tAc",
                     "select count(*), coalesce(sum(span_count * 2 + event_count + 2), 0) "
                     "from traces_trace where status = 'complete'"],
                    capture_output=True, text=True, check=True).stdout.strip().split("|")
                return f"{int(out[0]):,} complete traces, {int(out[1]):,} messages"

            measure(f"PostgreSQL + Redis ({database})", env, args, check)
        finally:
            subprocess.run(["psql", pg + "/postgres", "-qc",
                            f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"],
                           check=True, capture_output=True)
    if args.sqlite:
        with_file = Path(f"/tmp/bench_trace_clients_{os.getpid()}.sqlite3")
        try:
            env = {**common, "DATABASE_URL": f"sqlite:///{with_file}", "REDIS_URL": ""}
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True,
                           env={**migrate_env, **env})

            def check():
                import sqlite3
                with sqlite3.connect(with_file) as db:
                    traces, messages = db.execute(
                        "select count(*), coalesce(sum(span_count * 2 + event_count + 2), 0) "
                        "from traces_trace where status = 'complete'").fetchone()
                return f"{traces:,} complete traces, {messages:,} messages"

            measure(f"SQLite + in-memory layer ({with_file.name})", env, args, check)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{with_file}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
