"""Requests stored per second by one server process through the batch endpoint, on PostgreSQL.

    .venv/bin/python bench/tracking_ingest.py [--seconds 20] [--batch 1000] [--clients 4]

A fresh database, one server process (plumbing.devserver), a project from
`create_project`; `--clients` threads POST pre-built gzip'd batches (recent timestamps, 12 views)
for `--seconds`. Baseline in the same run: the same server answering empty batches (HTTP,
token check and JSON only), to show what storing costs on top. Target: 20,000 requests/s.
"""

import gzip
import json
import random
import threading
import time

import requests
from harness import on_threads, options
from tracking_benchdb import bench_database, manage

from plumbing.devserver import Server

TARGET = 20_000


def build_batches(count, size):
    rng = random.Random(1)
    now = time.time()
    batches = []
    for _ in range(count):
        events = [{"time": now - rng.random() * 60, "duration_ms": rng.lognormvariate(3, 0.8),
                   "method": "GET", "path": f"/items/{rng.randint(1, 999)}/", "query": "page=2",
                   "view": f"view_{rng.randint(1, 12)}", "status": rng.choice([200] * 30 + [404, 500]),
                   "session_id": f"{rng.getrandbits(64):016x}", "user_agent": "bench/1.0",
                   "client_ip": "10.0.0.1", "response_size": 1234,
                   "headers": {"Host": "shop.example"}} for _ in range(size)]
        batches.append(gzip.compress(json.dumps({"events": events}).encode(), 1))
    return batches


def hammer(url, token, bodies, seconds, clients, per_batch):
    stored = [0]
    statuses = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(n):
        session = requests.Session()
        headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip",
                   "Content-Type": "application/json"}
        i = n
        while time.monotonic() < deadline:
            response = session.post(url, data=bodies[i % len(bodies)], headers=headers, timeout=60)
            with lock:
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    stored[0] += response.json()["accepted"] if per_batch else 1
            if response.status_code == 429:
                time.sleep(float(response.headers.get("Retry-After", 1)))
            i += clients

    started = time.monotonic()
    on_threads(worker, clients)
    return stored[0] / (time.monotonic() - started), statuses


def main():
    args = options(__doc__, seconds=20.0, batch=1000, clients=4)
    with bench_database() as url:
        created = json.loads(manage(url, "create_project", "Bench"))
        server = Server({"DATABASE_URL": url,
                         "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"}).start()
        try:
            endpoint = server.url + "/api/tracking/ingest/"
            empty = [gzip.compress(b'{"events": []}')]
            base_rps, _ = hammer(endpoint, created["token"], empty, min(5, args.seconds),
                                 args.clients, per_batch=False)
            bodies = build_batches(20, args.batch)
            rate, statuses = hammer(endpoint, created["token"], bodies, args.seconds,
                                    args.clients, per_batch=True)
        finally:
            server.stop()
        import psycopg

        with psycopg.connect(url) as connection:
            rows = connection.execute("SELECT count(*) FROM tracking_requestmetric").fetchone()[0]
            rolled = connection.execute("SELECT sum(count) FROM tracking_requestrollup "
                                        "WHERE period_seconds = 60").fetchone()[0]
    print(f"Batch ingest on PostgreSQL, one {server.server} process, {args.clients} clients, "
          f"{args.batch} events per gzip'd batch, {args.seconds:g} s")
    print(f"baseline (empty batches): {base_rps:9.0f} HTTP requests/s")
    print(f"stored:                   {rate:9.0f} requests/s  "
          f"({rate / args.batch:.1f} batches/s; {rate / args.batch / base_rps:.3f} of baseline "
          f"HTTP rate; {rate / TARGET:.2f} x target {TARGET})")
    print(f"answers: {statuses}; rows in DB: {rows}; minute rollups count: {rolled}")


if __name__ == "__main__":
    main()
