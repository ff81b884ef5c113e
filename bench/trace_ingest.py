"""Trace ingestion speed: N websocket clients against a real server process on PostgreSQL.

For frames of 1, 10 and 100 messages it prints the messages stored per second and the time from
sending a trace's completing frame to its reply (p50/p99), beside the same clients against a
no-op consumer on the same server (TRACE_BENCH_NOOP: parses the JSON, stores nothing) and the
ratio between the two. The database bench_traces_<pid> is created and dropped by the script.

    .venv/bin/python bench/trace_ingest.py                 # about 1.5 minutes
    .venv/bin/python bench/trace_ingest.py --clients 16 --seconds 10 --frames 100
    BENCH_DATABASE_URL=postgres://user:pw@db:5432/ .venv/bin/python bench/trace_ingest.py
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import websocket  # noqa: E402 (sys.path set above)
from harness import on_threads  # noqa: E402

from plumbing.devserver import Server  # noqa: E402 (sys.path set above)

STORED = "Trace stored. Closing the connection"


def trace_messages(count: int) -> list[dict]:
    """A trace of `count` messages: start, spans (start/end pairs) and events, end last."""
    messages = [{"type": "TRACE_START", "timestamp": 1_700_000_000.0, "group_id": "trace"}]
    n = 0
    while len(messages) < count - 1:
        t = 1_700_000_000.0 + n * 0.001
        if n % 5 == 4 or len(messages) == count - 2:
            messages.append({"type": "EVENT", "timestamp": t, "name": f"event {n}"})
        else:
            messages.append({"type": "SPAN_START", "timestamp": t, "group_id": f"span-{n}",
                             "name": f"db.query {n % 7}", "service": "bench"})
            messages.append({"type": "SPAN_END", "timestamp": t + 0.0005, "group_id": f"span-{n}"})
        n += 1
    messages.append({"type": "TRACE_END", "timestamp": 1_700_000_000.0 + n, "group_id": "trace"})
    return messages


def frames_of(messages, size) -> list[str]:
    return [json.dumps(messages[i:i + size]) for i in range(0, len(messages), size)]


def run_clients(server, path, frames, messages_per_trace, clients, seconds, first_id):
    """Each client sends whole traces until the time is up; returns (msgs/s, latencies, errors)."""
    latencies, errors, stored = [], [], [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(number):
        trace_id = first_id + number * 1_000_000
        while time.perf_counter() < deadline:
            trace_id += 1
            try:
                ws = websocket.create_connection(f"{server.ws_url}{path}{trace_id}", timeout=60)
                for frame in frames:
                    ws.send(frame)
                sent = time.perf_counter()
                reply = json.loads(ws.recv())
                waited = time.perf_counter() - sent
                try:
                    ws.close()
                except OSError:
                    pass  # the server closed first (it does after replying): not a failure
            except Exception as error:  # noqa: BLE001 - counted and shown
                with lock:
                    errors.append(repr(error))
                return
            with lock:
                if reply.get("message") != STORED:
                    errors.append(reply.get("message"))
                    return
                latencies.append(waited)
                stored[0] += messages_per_trace

    started = time.perf_counter()
    on_threads(client, clients)
    elapsed = time.perf_counter() - started
    return stored[0] / elapsed, latencies, errors


def percentile(values, q):
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def psql(base_url, sql):
    subprocess.run(["psql", base_url + "postgres", "-qc", sql], check=True,
                   stdout=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent websocket clients (16)")
    parser.add_argument("--seconds", type=float, default=8, help="length of each run (8)")
    parser.add_argument("--messages", type=int, default=200, help="messages per trace (200)")
    parser.add_argument("--frames", default="1,10,100", help="frame sizes to measure (1,10,100)")
    args = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/")
    base = base if base.endswith("/") else base + "/"
    database = f"bench_traces_{os.getpid()}"
    env = {"DATABASE_URL": base + database, "TRACE_BENCH_NOOP": "True", "DEBUG": "False",
           "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
           "STATIC_MANIFEST": "False", "LOG_LEVEL": "WARNING"}
    env_all = {**os.environ, **env}
    env_all.pop("DB_DEFAULT", None)
    env_all.pop("REDIS_URL", None)  # the default in-memory layer: one process, as measured

    psql(base, f"CREATE DATABASE {database}")
    server = None
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env_all,
                       check=True)
        server = Server(env).start()
        server.env.pop("REDIS_URL", None)
        messages = trace_messages(args.messages)
        print(f"{args.clients} clients, traces of {len(messages)} messages, {args.seconds:g} s "
              f"per run, {server.server} + PostgreSQL ({database})")
        print(f"{'frame':>5}  {'consumer':<8} {'msgs/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'traces':>7}  {'stored/no-op':>12}")
        first_id = 1
        for size in [int(s) for s in args.frames.split(",")]:
            frames = frames_of(messages, size)
            results = {}
            for name, path in (("no-op", "/ws/bench/noop/"), ("store", "/ws/trace/")):
                run_clients(server, path, frames, len(messages), 1, 0.01, first_id)  # warm up
                first_id += 10_000_000
                rate, latencies, errors = run_clients(server, path, frames, len(messages),
                                                      args.clients, args.seconds, first_id)
                first_id += 10_000_000
                if errors:
                    print(f"  {name}: {len(errors)} client error(s), first: {errors[0]}")
                results[name] = rate
                ratio = f"{rate / results['no-op']:.2f}" if name == "store" else ""
                print(f"{size:>5}  {name:<8} {rate:>9,.0f} {percentile(latencies, 50) * 1e3:>8.1f} "
                      f"{percentile(latencies, 99) * 1e3:>8.1f} {len(latencies):>7}  {ratio:>12}",
                      flush=True)
        check = subprocess.run(
            ["psql", base + database, "-tAc",
             "select count(*), coalesce(sum(span_count * 2 + event_count + 2), 0) "
             "from traces_trace where status = 'complete'"],
            capture_output=True, text=True, check=True)
        traces, stored = check.stdout.strip().split("|")
        print(f"in the database: {traces} complete traces, {int(stored):,} messages")
    finally:
        if server:
            server.stop()
        psql(base, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


if __name__ == "__main__":
    main()
