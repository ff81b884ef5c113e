"""Benchmark: machines posting test_start/test_stop while browser-like sockets watch.

One server process (plumbing.devserver.Server: uvicorn, or MONITOR_SERVER=daphne) on
PostgreSQL + Redis, from a clean checkout: creates and drops its own database bench_tm_<pid>.
N machines (one request at a time each, as a real machine) post start/stop; W websocket clients
watch the machines' /ws/machine/<pk>/last/ sockets. The load comes from one asyncio process
(aiohttp), so the client costs little of the machine's CPU next to the server.

Prints requests/s and the delay from the 202 to the first frame at each watcher that shows the
report's change (p50/p99), beside a baseline measured in the same run: the same machines posting
a malformed body to the same endpoint (400 from the same view stack: no database, no frames).
Frames are coalesced per page (LIVE_MIN_INTERVAL), so a watcher gets fewer frames than there
are reports; each watcher applies them as the last-run page does (tm_api.deltas.LastRunPage).
At the end, every watcher's page is compared with the database (machine_last_data): a page that
differs is stale (must be 0); a report whose change no watcher of its machine saw is missing.

    .venv/bin/python bench/tm_live.py [--machines 50] [--watchers 200] [--seconds 20]
                                      [--rounds 1] [--channel-layer shipped|core]

--rounds N measures N rounds of a baseline and the reports back to back (on a noisy machine the
rate swings by a quarter between runs) and reports the round of the median ratio, after a line
with every round's; the watchers' figures and the stale pages are over all rounds.

--channel-layer core runs the server with channels_redis' queueing RedisChannelLayer instead of
the shipped pub/sub layer (settings.CHANNEL_LAYERS), to compare the delivery side.
Env: BENCH_PG (default postgres://postgres@127.0.0.1:5432), BENCH_REDIS_DB (default 13).
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from plumbing.devserver import Server  # noqa: E402 (sys.path set above)
from tm_api.deltas import LastRunPage  # noqa: E402 (sys.path set above)

TESTS_PER_RUN = 60
ORDER = [f"test_{n:03d}.py" for k in range(4) for n in range(TESTS_PER_RUN)[k::4]]


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


async def test_ids(session, url, machine_id):
    """{file name: test pk} of the machine's last run (read once per dry run, not timed)."""
    async with session.get(f"{url}/tm_api/machine_last_data/{machine_id}/") as response:
        body = await response.json()
    return {test["file_name"]: test["pk"]
            for scenario in body["last_master_scenario"]["scenarios"]
            for test in scenario["tests"]}


async def machine(session, url, name, machine_id, deadline, real, answered_log, latencies):
    """Post as fast as answers come. Every 2*TESTS_PER_RUN reports a new dry run starts over.
    answered_log gets (test pk, status it reported, time the 202 was read) per report."""
    done = 0
    ids = {}
    while time.monotonic() < deadline:
        if not real:
            async with session.post(url + "/tm_api/test_stop/", data=b"{bad",
                                    headers={"Content-Type": "application/json"}) as response:
                assert response.status == 400
                await response.read()
            done += 1
            continue
        if done % (2 * TESTS_PER_RUN) == 0:
            async with session.post(url + "/tm_api/dry_run/", json=dry_run_body(name)) as r:
                assert r.status == 201, await r.text()
            ids = await test_ids(session, url, machine_id)
        test = ORDER[(done // 2) % TESTS_PER_RUN]
        body = {"machine_name": name, "file_path": "/bench", "file_name": test}
        path = "/tm_api/test_stop/" if done % 2 else "/tm_api/test_start/"
        if done % 2:
            body["status"] = "passed"
        sent = time.monotonic()
        async with session.post(url + path, json=body) as response:
            await response.read()
            assert response.status == 202, await response.text()
        answered = time.monotonic()
        latencies.append((answered - sent) * 1000)
        answered_log.append((ids[test], body.get("status", "running"), answered))
        done += 1
    return done


CLOSED_BY_SERVER = []


class Watcher:
    """One browser on a machine's last-run page: its socket's frames applied as the page does,
    and when each test was first shown in each status."""

    def __init__(self, machine_id):
        self.machine_id = machine_id
        self.page = LastRunPage()
        self.frames = 0
        self.refetches = 0
        self.opened = False
        self.shown = {}  # test pk -> {status: time first shown}

    async def watch(self, session, server):
        url = f"{server.ws_url}/ws/machine/{self.machine_id}/last/"
        async with session.ws_connect(url, max_msg_size=0) as socket:
            self.opened = True
            async for message in socket:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.monotonic()
                self.frames += 1
                frame = json.loads(message.data)
                if not self.page.apply(frame):
                    # a delta of a run the page does not show: the page reads it over REST
                    self.refetches += 1
                    self.page.show(await self.rest(session, server))
                news = frame.get("machine_data", {}).get("last_master_scenario") or {}
                for scenario in news.get("scenarios", []):
                    for test in scenario["tests"]:
                        self.shown.setdefault(test["pk"], {}).setdefault(test["status"], now)
        CLOSED_BY_SERVER.append(url)

    async def rest(self, session, server):
        async with session.get(f"{server.url}/tm_api/machine_last_data/{self.machine_id}/") as r:
            return await r.json()

    def first_shown(self, test, status):
        """When the page first showed `test` in `status` or, for a start, any later state."""
        shown = self.shown.get(test, {})
        if status != "running":
            return shown.get(status)
        return min((at for state, at in shown.items() if state != "waiting"), default=None)


async def load(server, names, machine_ids, seconds, real, answered, latencies):
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        counts = await asyncio.gather(*(
            machine(session, server.url, name, machine_ids[name], deadline, real, answered[i],
                    latencies)
            for i, name in enumerate(names)
        ))
        return sum(counts), time.monotonic() - started


def _check_alive(watchers):
    for task in watchers:
        if task.done():
            raise RuntimeError(f"a watcher socket failed: {task.exception() or 'closed'}")


async def measure(server, names, machine_ids, args):
    watched = {w: w % len(names) for w in range(args.watchers)}
    watchers = {w: Watcher(machine_ids[names[index]]) for w, index in watched.items()}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = []
        # Browsers open their sockets over time; 200 handshakes in one instant would also
        # exhaust the channel layer's Redis connection pool (100) in group_add.
        for watcher in watchers.values():
            tasks.append(asyncio.create_task(watcher.watch(session, server)))
            while sum(1 for w in watchers.values() if w.opened) < len(tasks) - 20:
                _check_alive(tasks)
                await asyncio.sleep(0.01)
        while sum(1 for w in watchers.values() if w.opened) < args.watchers:
            _check_alive(tasks)
            await asyncio.sleep(0.05)
        scratch = {i: [] for i in range(len(names))}
        await load(server, names, machine_ids, args.seconds / 4, False, scratch, [])  # warm-up
        answered = {i: [] for i in range(len(names))}
        rounds = []  # per round: the baseline's rate, the reports' rate and latencies
        for number in range(args.rounds):
            base_count, base_elapsed = await load(server, names, machine_ids, args.seconds,
                                                  False, scratch, [])
            if number == 0:
                for watcher in watchers.values():
                    watcher.frames = 0
            latencies = []
            count, elapsed = await load(server, names, machine_ids, args.seconds, True,
                                        answered, latencies)
            rounds.append({"base_rate": base_count / base_elapsed, "rate": count / elapsed,
                           "latencies": latencies, "reports": count})
        await asyncio.sleep(2)
        _check_alive(tasks)
        stale = 0
        for watcher in watchers.values():
            database = await watcher.rest(session, server)
            if LastRunPage.summary(watcher.page.body) != LastRunPage.summary(database):
                stale += 1
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    delays, missing = [], 0
    for w, index in watched.items():
        watcher = watchers[w]
        for test, status, answered_at in answered[index]:
            shown = watcher.first_shown(test, status)
            if shown is None:
                missing += 1
            else:
                delays.append((shown - answered_at) * 1000)
    frames = [watcher.frames for watcher in watchers.values()]
    return {"rounds": rounds, "delays": delays, "missing": missing, "stale": stale,
            "frames": frames, "reports": sum(r["reports"] for r in rounds),
            "refetches": sum(watcher.refetches for watcher in watchers.values())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=50)
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=1,
                        help="baseline-then-reports rounds; the median round is reported")
    parser.add_argument("--channel-layer", choices=["shipped", "core"], default="shipped")
    args = parser.parse_args()
    pg = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    redis_url = f"redis://127.0.0.1:6379/{os.environ.get('BENCH_REDIS_DB', '13')}"
    database = f"bench_tm_{os.getpid()}"
    env = {"DATABASE_URL": f"{pg}/{database}", "REDIS_URL": redis_url,
           "REDIS_PREFIX": database, "SECRET_KEY": "bench-" + "x" * 50, "DEBUG": "False",
           "TM_ALLOW_ANONYMOUS_MACHINES": "True", "DASHBOARDS_PUBLIC": "True",
           # Hundreds of anonymous writes a second from one address: over RATE_LIMIT_CLIENT.
           "RATE_LIMIT_CLIENT": "0", "LOG_LEVEL": "WARNING"}
    if args.channel_layer == "core":
        settings_dir = tempfile.mkdtemp(prefix="tm-bench-")
        Path(settings_dir, "tm_bench_settings.py").write_text(
            "from trace_project.settings import *  # noqa\n"
            "CHANNEL_LAYERS = {'default': {'BACKEND': "
            "'channels_redis.core.RedisChannelLayer', "
            "'CONFIG': {'hosts': [REDIS_URL], 'prefix': REDIS_PREFIX_}}}\n"
            .replace("REDIS_PREFIX_", repr(database))
        )
        env.update(DJANGO_SETTINGS_MODULE="tm_bench_settings",
                   PYTHONPATH=os.pathsep.join([settings_dir, str(ROOT)]))
    psql(f"CREATE DATABASE {database}", pg)
    server = None
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True,
                       env={**os.environ, **env})
        server = Server(env, access_log=False).start()  # as production runs
        names = [f"bench-{n:02d}" for n in range(args.machines)]
        for name in names:
            assert requests.post(server.url + "/tm_api/dry_run/",
                                 json=dry_run_body(name)).status_code == 201
        machine_ids = {m["machine_name"]: m["id"] for m in requests.get(
            server.url + "/tm_api/machines/?page_size=100").json()["results"]}
        result = asyncio.run(measure(server, names, machine_ids, args))
        rounds, delays, frames = result["rounds"], result["delays"], result["frames"]
        # With several rounds, the round of the median ratio stands for the run (each round
        # is a baseline and a measurement back to back, so each ratio is of one minute).
        rounds.sort(key=lambda r: r["rate"] / r["base_rate"])
        middle = rounds[(len(rounds) - 1) // 2]
        base_rate, rate, latencies = middle["base_rate"], middle["rate"], middle["latencies"]
        print(f"machines={args.machines} watchers={args.watchers} seconds={args.seconds:g} "
              f"tests/run={TESTS_PER_RUN} channel layer: {args.channel_layer} "
              f"(one {server.server} process, PostgreSQL + Redis; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        if len(rounds) > 1:
            print(f"{len(rounds)} rounds, by ratio: " + "; ".join(
                f"{r['rate']:.0f} req/s = {r['rate'] / r['base_rate']:.2f} x, p99 "
                f"{percentile(r['latencies'], 99):.1f} ms" for r in rounds)
                + "; the median round:")
        print(f"baseline (400 on malformed JSON, same view): {base_rate:8.0f} req/s")
        print(f"test_start/test_stop:                        {rate:8.0f} req/s  "
              f"= {rate / base_rate:.2f} x baseline")
        print(f"request latency: p50 {percentile(latencies, 50):.1f} ms, "
              f"p99 {percentile(latencies, 99):.1f} ms")
        print(f"202 -> change shown at watchers: p50 {percentile(delays, 50):.1f} ms, "
              f"p99 {percentile(delays, 99):.1f} ms over {len(delays)} report x watcher; "
              f"missing: {result['missing']}; watcher sockets closed by the server: "
              f"{len(CLOSED_BY_SERVER)}")
        if frames:
            reports_per_machine = result["reports"] / len(names)
            print(f"frames per watcher: mean {sum(frames) / len(frames):.0f}, "
                  f"min {min(frames)}, max {max(frames)} "
                  f"(for {reports_per_machine:.0f} reports per machine); "
                  f"REST refetches: {result['refetches']}")
            print(f"stale pages at the end (page != database): {result['stale']} "
                  f"of {len(frames)}")
        print("(a negative delay: the frame arrived before the client had read the 202; "
              "frames are sent after commit, alongside the response)")
        problems = [line for line in server.output().splitlines()
                    if ("WARNING" in line or "ERROR" in line or "Traceback" in line)
                    and "Bad Request" not in line]  # the baseline's 400s
        print(f"server log: {len(problems)} warning/error lines"
              + "".join(f"\n  {line[:160]}" for line in problems[:5]))
    finally:
        if server:
            server.stop()
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", pg)


if __name__ == "__main__":
    main()
