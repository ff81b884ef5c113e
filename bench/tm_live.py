"""Benchmark: machines posting test_start/test_stop while browser-like sockets watch.

One daphne process (trace_project.devserver.Server) on PostgreSQL + Redis, from a clean
checkout: creates and drops its own database bench_tm_<pid>. N machines (threads, one request at
a time each, as a real machine) post start/stop; W websocket clients watch the machines'
/ws/machine/<pk>/last/ sockets. Prints requests/s and the delay from the 202 to the frame at the
watchers (p50/p99), and a baseline in the same run: the same machines posting a malformed body
to the same endpoint (400 from the same view stack, no database, no frames).

    .venv/bin/python bench/tm_live.py [--machines 50] [--watchers 200] [--seconds 20]
Env: BENCH_PG (default postgres://postgres@127.0.0.1:5432), BENCH_REDIS_DB (default 13).
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import websocket

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from trace_project.devserver import Server  # noqa: E402

TESTS_PER_RUN = 60


def psql(sql, pg):
    subprocess.run(["psql", pg + "/postgres", "-qc", sql], check=True, capture_output=True)


def dry_run_body(machine):
    tests = [{"file_path": "/bench", "file_name": f"test_{n:03d}.py", "script": "pass\n"}
             for n in range(TESTS_PER_RUN)]
    return {"machine_name": machine, "timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
            "master_scenario": {"file_path": "/bench", "file_name": "master.py", "script": "",
                                "scenarios": [{"file_path": "/bench", "file_name": f"s{k}.py",
                                               "script": "", "tests": tests[k::4]}
                                              for k in range(4)]}}


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def run_machines(server, names, seconds, real, sent_log):
    """Each machine posts as fast as it gets answers. Returns (count, elapsed)."""
    count = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def machine(name, index):
        session = requests.Session()
        order = [f"test_{n:03d}.py" for k in range(4) for n in range(TESTS_PER_RUN)[k::4]]
        done = 0
        while time.monotonic() < deadline:
            if not real:
                response = session.post(server.url + "/tm_api/test_stop/", data="{bad",
                                        headers={"Content-Type": "application/json"})
                assert response.status_code == 400
                done += 1
                continue
            if done % (2 * TESTS_PER_RUN) == 0:
                session.post(server.url + "/tm_api/dry_run/", json=dry_run_body(name))
                sent_log[index].append(None)  # the dry run's frame, not timed
            test = order[(done // 2) % TESTS_PER_RUN]
            body = {"machine_name": name, "file_path": "/bench", "file_name": test}
            if done % 2:
                response = session.post(server.url + "/tm_api/test_stop/",
                                        json={**body, "status": "passed"})
            else:
                response = session.post(server.url + "/tm_api/test_start/", json=body)
            answered = time.monotonic()
            assert response.status_code == 202, response.text
            sent_log[index].append(answered)
            done += 1
        with lock:
            count[0] += done

    threads = [threading.Thread(target=machine, args=(n, i)) for i, n in enumerate(names)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return count[0], time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=50)
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    pg = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    redis_url = f"redis://127.0.0.1:6379/{os.environ.get('BENCH_REDIS_DB', '13')}"
    database = f"bench_tm_{os.getpid()}"
    env = {"DATABASE_URL": f"{pg}/{database}", "REDIS_URL": redis_url,
           "REDIS_PREFIX": database, "SECRET_KEY": "bench-" + "x" * 50, "DEBUG": "False",
           "TM_ALLOW_ANONYMOUS_MACHINES": "True", "DASHBOARDS_PUBLIC": "True",
           "LOG_LEVEL": "WARNING"}
    psql(f"CREATE DATABASE {database}", pg)
    server = None
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True,
                       env={**os.environ, **env})
        server = Server(env).start()
        names = [f"bench-{n:02d}" for n in range(args.machines)]
        for name in names:
            assert requests.post(server.url + "/tm_api/dry_run/",
                                 json=dry_run_body(name)).status_code == 201
        machine_ids = {m["machine_name"]: m["id"] for m in requests.get(
            server.url + "/tm_api/machines/?page_size=100").json()["results"]}

        # Watchers: each follows one machine's last-run socket and timestamps every frame.
        arrivals = {i: [] for i in range(args.watchers)}
        watched = {}
        sockets = []
        for w in range(args.watchers):
            index = w % len(names)
            watched[w] = index
            sockets.append(websocket.create_connection(
                f"{server.ws_url}/ws/machine/{machine_ids[names[index]]}/last/", timeout=30))

        def watch(w, sock):
            while True:
                try:
                    sock.recv()
                except Exception:  # noqa: BLE001 - closed at the end
                    return
                arrivals[w].append(time.monotonic())

        watchers = [threading.Thread(target=watch, args=(w, s), daemon=True)
                    for w, s in enumerate(sockets)]
        for thread in watchers:
            thread.start()
        time.sleep(1)

        run_machines(server, names, args.seconds / 4, real=False, sent_log={})
        base_count, base_elapsed = run_machines(server, names, args.seconds, False, {})
        sent = {i: [] for i in range(len(names))}
        count, elapsed = run_machines(server, names, args.seconds, True, sent)
        time.sleep(2)
        for sock in sockets:
            sock.close()

        delays = []
        missing = 0
        for w, index in watched.items():
            got = arrivals[w]
            for k, answered in enumerate(sent[index]):
                if k >= len(got):
                    missing += 1
                elif answered is not None:
                    delays.append((got[k] - answered) * 1000)
        rate, base_rate = count / elapsed, base_count / base_elapsed
        print(f"machines={args.machines} watchers={args.watchers} seconds={args.seconds:g} "
              f"tests/run={TESTS_PER_RUN} (one daphne process, PostgreSQL + Redis)")
        print(f"baseline (400 on malformed JSON, same view): {base_rate:8.0f} req/s")
        print(f"test_start/test_stop:                        {rate:8.0f} req/s  "
              f"= {rate / base_rate:.2f} x baseline")
        print(f"202 -> frame at watchers: p50 {percentile(delays, 50):.1f} ms, "
              f"p99 {percentile(delays, 99):.1f} ms, max {max(delays):.1f} ms over "
              f"{len(delays)} frames; missing frames: {missing}")
        print("(negative: the frame arrived before the client had read the 202; frames are "
              "sent after commit, before the response)")
    finally:
        if server:
            server.stop()
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", pg)


if __name__ == "__main__":
    main()
