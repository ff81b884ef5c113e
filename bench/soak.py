"""Soak: an hour (configurable) of mixed load at a steady rate on PostgreSQL + Redis.

    .venv/bin/python bench/soak.py                              # the hour: 60 min, rows per 10 min
    .venv/bin/python bench/soak.py --minutes 6 --interval-minutes 1 --warmup-minutes 1   # a try

One server process (plumbing.devserver.Server; MONITOR_SERVER picks it) on PostgreSQL and the
Redis channel layer, and the notification worker (`manage.py db_worker`) beside it, as production
runs them. A fresh database soak_<pid>_<time> is created, migrated and dropped after; the Redis keys
under the run's own prefix are deleted after (nothing else in that Redis db is touched).

The load is open-loop: arrivals are scheduled at a steady --rate, each request is started at its
time whether or not earlier ones have been answered, and its latency is measured from its
scheduled time (so a stalled server shows as latency, not as fewer requests). The mix: trace
websocket sessions (ws/trace/<id>, 3 frames, until "Trace stored"), test-machine reports (dry run,
test_start, test_stop with a machine token; each machine's reports in order), gzip'd tracking
batches (project token), REST reads (trace list, machines, tracking summary), HTML pages, and
/healthz as the baseline. Live watchers stay open all along (each machine's last-run socket, the
machines' status socket, the metrics socket) and some trace sessions are watched on their trace
page socket; their frames are counted against what the writes should have sent.

Prints one progress line per interval, then per interval and endpoint count/errors/p50/p95/p99,
the server's and the worker's RSS per interval and its growth after warm-up, each endpoint's p99
per interval relative to its first interval after warm-up, errors by kind, frames received vs
expected, and a PASS/FAIL line per target (flat memory, no errors, p99 stable within 20%); then
the stalls (bursts of seconds in which most requests were slow) with what the probes saw around
each: garbage collections and late wake-ups in the client, server and worker (bench/soak_probe),
the latency of a commit on a connection of its own, and the host's CPU and IO pressure (PSI).
Every request and RSS sample is written to a CSV (--samples) for plotting. See docs/soak.md.
"""

import argparse
import asyncio
import csv
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from tm_live import ORDER, TESTS_PER_RUN, dry_run_body, percentile
from trace_ingest import STORED, frames_of, trace_messages
from tracking_benchdb import ROOT, bench_database, manage
from tracking_ingest import build_batches

from plumbing.devserver import Server

PROBE_DIR = Path(__file__).resolve().parent / "soak_probe"
sys.path.insert(0, str(PROBE_DIR))
import soak_probe  # noqa: E402 - the stall probe, from its own directory (see its docstring)

# Share of the arrivals per kind of request (weights; the rate is --rate in total).
MIX = {
    "healthz": 2,
    "trace session": 5,
    "tm report": 12,
    "tracking batch": 4,
    "rest traces": 2,
    "rest machines": 2,
    "rest summary": 2,
    "page machines": 1,
    "page machine last": 1,
    "page traces": 1,
    "page trace": 1,
    "page metrics": 1,
}
BASELINE = "healthz"
TRACE_MESSAGES = 20  # per trace session, sent in 3 frames
TRACKING_EVENTS = 100  # per batch
TRACE_WATCH_EVERY = 5  # one trace session in 5 is watched on its page's socket
GRACE_SECONDS = 5  # after the last arrival, for late answers and frames
DB_PROBE_SECONDS = 0.25  # period of the database commit probe


def rss_mb(pid):
    """Resident set size of a process in MB (psutil when installed, else /proc)."""
    try:
        import psutil

        try:
            return psutil.Process(pid).memory_info().rss / 2**20
        except psutil.Error:
            return float("nan")
    except ImportError:
        pass
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid):
    """User + system CPU time of a process so far, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def process_sample(pids):
    """(server MB, worker MB, server CPU s, worker CPU s, the host's 1-minute load average)."""
    return (*(rss_mb(pid) for pid in pids), *(cpu_seconds(pid) for pid in pids),
            os.getloadavg()[0])


def pressure_totals():
    """The host's pressure stall totals (PSI "some", microseconds): (cpu, io), or None."""
    totals = []
    for resource in ("cpu", "io"):
        try:
            line = Path(f"/proc/pressure/{resource}").read_text().splitlines()[0]
            totals.append(int(line.rsplit("total=", 1)[1]))
        except (OSError, IndexError, ValueError):
            return None
    return tuple(totals)


def machine_header():
    uptime = float(Path("/proc/uptime").read_text().split()[0]) if Path("/proc/uptime").exists() else 0
    load = os.getloadavg()
    return (f"host up {uptime / 3600:.1f} h, load average {load[0]:.2f} {load[1]:.2f} "
            f"{load[2]:.2f} on {os.cpu_count()} cores")


@contextmanager
def soak_database(url):
    """A fresh database when `url` names no database (dropped after), else that one, migrated."""
    if urlsplit(url).path.strip("/"):
        manage(url, "migrate", "-v0")
        yield url, False
    else:
        with bench_database(url.rstrip("/"), prefix="soak") as fresh:
            yield fresh, True


def delete_redis_keys(redis_url, prefix):
    import redis

    client = redis.Redis.from_url(redis_url)
    deleted = 0
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        deleted += client.delete(key)
    return deleted


def error_kind(error):
    """A client exception as a short kind: its class, and for a system error its reason."""
    reason = getattr(error, "strerror", None)
    return f"{type(error).__name__} ({reason})" if reason else type(error).__name__


class Machine:
    """A test machine of the load: its reports go out one after the other, in run order."""

    def __init__(self, name):
        self.name = name
        self.id = None
        self.step = 0
        self.lock = asyncio.Lock()
        self.accepted = 0  # 2xx reports since the watchers opened: one frame each on LAST


class Watcher:
    """A browser-like live socket kept open for the whole run, counting its frames."""

    def __init__(self, kind, path, machine=None):
        self.kind, self.path, self.machine = kind, path, machine
        self.frames = 0
        self.interrupted = False
        self.opened = asyncio.Event()


class Soak:
    def __init__(self, server, args, machines, project, machine_token):
        self.server, self.args = server, args
        self.machines = machines
        self.project = project
        self.machine_headers = {"Authorization": f"Token {machine_token}"}
        self.tracking_headers = {"Authorization": f"Bearer {project['token']}",
                                 "Content-Encoding": "gzip", "Content-Type": "application/json"}
        self.rng = random.Random(7)
        # Trace ids of this run: past any earlier run's, when --database-url names a kept database.
        self.next_trace = int(time.time()) * 1000
        self.last_stored_trace = None
        self.next_machine = 0
        self.samples = []  # (t from start at the scheduled time, endpoint, latency ms, outcome)
        self.rss = []  # (t, server MB, worker MB, server CPU s, worker CPU s, host load)
        self.lags = []  # (t, ms the client started an arrival after its scheduled time)
        self.started_unix = None
        self.db_probe = []  # (t, ms of a commit on its own connection: WAL flush included)
        self.pressure = []  # (t, host CPU stall ms, host IO stall ms) over the past second
        self.probing = threading.Event()
        self.errors = Counter()  # (endpoint, kind)
        self.error_bodies = {}  # (endpoint, kind): the first answer's body, for the report
        self.watchers = []
        self.trace_watch = Counter()  # watched, complete seen, frames
        self.started = None
        self.stop_watchers = asyncio.Event()

    # -- the kinds of request: each returns its endpoint name's outcome, "ok" or an error kind --

    async def answer(self, response, note, expected):
        """'ok', or the unexpected status (its first body kept to be shown with the errors)."""
        body = await response.read()
        if response.status == expected:
            return "ok"
        kind = f"HTTP {response.status}"
        self.error_bodies.setdefault((note["endpoint"], kind), body[:300].decode(errors="replace"))
        return kind

    async def get(self, path, note, html=False):
        async with self.session.get(self.server.url + path) as response:
            outcome = await self.answer(response, note, 200)
            if outcome == "ok" and html and b"</html>" not in await response.read():
                return "not a page"
            return outcome

    async def healthz(self, note):
        return await self.get("/healthz", note)

    async def trace_session(self, note):
        trace_id = self.next_trace
        self.next_trace += 1
        watch = None
        if trace_id % TRACE_WATCH_EVERY == 0:
            watch = await self.session.ws_connect(
                f"{self.server.ws_url}/ws/traces/{trace_id}/live/")
        messages = trace_messages(TRACE_MESSAGES)
        now = time.time()
        for m in messages:  # Unix times of now, as a real trace would carry
            m["timestamp"] += now - 1_700_000_000.0
        outcome = None
        try:
            async with self.session.ws_connect(f"{self.server.ws_url}/ws/trace/{trace_id}") as ws:
                for frame in frames_of(messages, math.ceil(TRACE_MESSAGES / 3)):
                    await ws.send_str(frame)
                reply = await ws.receive()
                if reply.type != aiohttp.WSMsgType.TEXT:
                    outcome = f"ws closed {ws.close_code}"
                else:
                    message = json.loads(reply.data).get("message", "")
                    outcome = "ok" if message == STORED else f"reply {message[:40]!r}"
        finally:  # only a stored trace is expected to show complete on its page
            if watch is not None:
                follow = self.watch_trace(watch) if outcome == "ok" else watch.close()
                asyncio.get_running_loop().create_task(follow)
        if outcome == "ok":
            self.last_stored_trace = trace_id
        return outcome

    async def watch_trace(self, socket):
        """The page's socket of a trace: it must hear of the trace complete."""
        self.trace_watch["watched"] += 1
        try:
            async with asyncio.timeout(GRACE_SECONDS):
                async for message in socket:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    self.trace_watch["frames"] += 1
                    if json.loads(message.data).get("status") == "complete":
                        self.trace_watch["complete"] += 1
                        break
        except TimeoutError:
            pass
        finally:
            await socket.close()

    async def tm_report(self, note):
        machine = self.machines[self.next_machine % len(self.machines)]
        self.next_machine += 1
        async with machine.lock:  # a machine reports one test after the other
            step = machine.step % (2 * TESTS_PER_RUN + 1)
            if step == 0:
                note["endpoint"], path, expected = "tm dry_run", "/tm_api/dry_run/", 201
                body = dry_run_body(machine.name)
            else:
                test = ORDER[(step - 1) // 2]
                body = {"machine_name": machine.name, "file_path": "/bench", "file_name": test}
                if step % 2:
                    note["endpoint"], path = "tm test_start", "/tm_api/test_start/"
                else:
                    note["endpoint"], path = "tm test_stop", "/tm_api/test_stop/"
                    body["status"] = "failed" if self.rng.random() < 0.05 else "passed"
                expected = 202
            machine.step += 1
            async with self.session.post(self.server.url + path, json=body,
                                         headers=self.machine_headers) as response:
                outcome = await self.answer(response, note, expected)
                if outcome == "ok":
                    machine.accepted += 1
                return outcome

    async def tracking_batch(self, note):
        body = build_batches(1, TRACKING_EVENTS)[0]
        async with self.session.post(self.server.url + "/api/tracking/ingest/", data=body,
                                     headers=self.tracking_headers) as response:
            return await self.answer(response, note, 200)

    async def rest_traces(self, note):
        return await self.get("/api/traces/", note)

    async def rest_machines(self, note):
        return await self.get("/tm_api/machines/", note)

    async def rest_summary(self, note):
        return await self.get(f"/api/tracking/projects/{self.project['id']}/summary/"
                              f"?last=1h", note)

    async def page_machines(self, note):
        return await self.get("/machines/", note, html=True)

    async def page_machine_last(self, note):
        machine = self.machines[self.rng.randrange(len(self.machines))]
        return await self.get(f"/machines/{machine.id}/last/", note, html=True)

    async def page_traces(self, note):
        return await self.get("/traces/", note, html=True)

    async def page_trace(self, note):
        return await self.get(f"/traces/{self.last_stored_trace}/", note, html=True)

    async def page_metrics(self, note):
        return await self.get(f"/metrics/{self.project['id']}/", note, html=True)

    # -- the run --

    async def timed(self, kind, due):
        note = {"endpoint": kind}
        handler = getattr(self, kind.replace(" ", "_"))
        try:
            async with asyncio.timeout(self.args.timeout):
                outcome = await handler(note)
        except TimeoutError:
            outcome = "timeout"
        except (aiohttp.ClientError, OSError) as error:
            outcome = error_kind(error)
        latency = (time.monotonic() - due) * 1000
        self.samples.append((due - self.started, note["endpoint"], latency, outcome))
        if outcome != "ok":
            self.errors[(note["endpoint"], outcome)] += 1

    async def watch(self, watcher):
        """Keep one live socket open; a close by the server is an error, and it reopens."""
        url = self.server.ws_url + watcher.path
        while not self.stop_watchers.is_set():
            try:
                async with self.session.ws_connect(url, heartbeat=None) as socket:
                    watcher.opened.set()
                    stop = asyncio.ensure_future(self.stop_watchers.wait())
                    while True:
                        receive = asyncio.ensure_future(socket.receive())
                        await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
                        if not receive.done():
                            receive.cancel()
                            return
                        message = receive.result()
                        if message.type == aiohttp.WSMsgType.TEXT:
                            watcher.frames += 1
                            continue
                        kind = f"watcher closed {socket.close_code}"
                        break
            except (aiohttp.ClientError, OSError) as error:
                kind = f"watcher {error_kind(error)}"
            watcher.interrupted = True
            self.errors[(f"watch {watcher.kind}", kind)] += 1
            await asyncio.sleep(1)

    def probe(self, database_url):
        """Thread: a commit on its own connection every DB_PROBE_SECONDS (a stall of the
        database or the disk shows here whatever the server does), and once a second the host's
        CPU and IO pressure stall time (PSI) over that second."""
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as connection:
            last = pressure_totals()
            last_at = time.monotonic()
            while not self.probing.wait(DB_PROBE_SECONDS):
                began = time.monotonic()
                connection.execute("SELECT txid_current()")  # an xid: the commit flushes WAL
                self.db_probe.append((began - self.started, (time.monotonic() - began) * 1000))
                if began - last_at >= 1 and last is not None:
                    now = pressure_totals()
                    self.pressure.append((began - self.started, (now[0] - last[0]) / 1000,
                                          (now[1] - last[1]) / 1000))
                    last, last_at = now, began

    async def sample_memory(self, pids):
        while True:
            self.rss.append((time.monotonic() - self.started, *process_sample(pids)))
            await asyncio.sleep(self.args.sample_seconds)

    async def progress(self, interval_s, intervals):
        for k in range(intervals):
            await asyncio.sleep(max(0, self.started + (k + 1) * interval_s - time.monotonic()))
            done = [s for s in self.samples if k * interval_s <= s[0] < (k + 1) * interval_s]
            bad = sum(1 for s in done if s[3] != "ok")
            rss = [r[1] for r in self.rss if k * interval_s <= r[0] < (k + 1) * interval_s]
            print(f"  [{time.strftime('%H:%M:%S')}] interval {k + 1}/{intervals}: "
                  f"{len(done)} answered, {bad} errors, p99 "
                  f"{percentile([s[2] for s in done], 99):.0f} ms, server RSS "
                  f"{rss[-1] if rss else float('nan'):.1f} MB", flush=True)

    async def run(self, seconds, pids):
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as self.session:
            await self.set_up()
            self.watchers = [Watcher("machine last", f"/ws/machine/{m.id}/last/", m)
                             for m in self.machines]
            self.watchers += [Watcher("machine status", "/ws/machine/status/"),
                              Watcher("metrics", f"/ws/metrics/{self.project['id']}/")]
            watch_tasks = [asyncio.create_task(self.watch(w)) for w in self.watchers]
            for watcher in self.watchers:
                await asyncio.wait_for(watcher.opened.wait(), 30)

            self.started = time.monotonic()
            self.started_unix = time.time()
            prober = threading.Thread(target=self.probe, args=(self.server.env["DATABASE_URL"],),
                                      name="soak-db-probe", daemon=True)
            prober.start()
            interval_s = self.args.interval_minutes * 60
            helpers = [asyncio.create_task(self.sample_memory(pids)),
                       asyncio.create_task(self.progress(interval_s,
                                                         math.ceil(seconds / interval_s)))]
            kinds, weights = list(MIX), list(MIX.values())
            tasks = set()
            n = 0
            while (due := self.started + n / self.args.rate) < self.started + seconds:
                await asyncio.sleep(max(0, due - time.monotonic()))
                self.lags.append((due - self.started, (time.monotonic() - due) * 1000))
                task = asyncio.create_task(self.timed(self.rng.choices(kinds, weights)[0], due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            await asyncio.gather(*list(tasks))
            await asyncio.sleep(GRACE_SECONDS)  # late frames
            helpers[1].cancel()
            await asyncio.sleep(0)
            self.rss.append((time.monotonic() - self.started, *process_sample(pids)))
            self.stop_watchers.set()
            await asyncio.gather(*watch_tasks, return_exceptions=True)
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.probing.set()
            prober.join(5)

    async def set_up(self):
        """Every machine's first dry run, one stored trace and one batch before the clock runs."""
        for machine in self.machines:
            async with self.session.post(self.server.url + "/tm_api/dry_run/",
                                         json=dry_run_body(machine.name),
                                         headers=self.machine_headers) as response:
                assert response.status == 201, await response.text()
            machine.step = 1
        async with self.session.get(self.server.url + "/tm_api/machines/?page_size=100") as r:
            ids = {m["machine_name"]: m["id"] for m in (await r.json())["results"]}
        for machine in self.machines:
            machine.id = ids[machine.name]
        assert await self.trace_session({}) == "ok"
        assert await self.tracking_batch({}) == "ok"


# -- the report --

def interval_of(t, interval_s):
    return int(t // interval_s)


def rows_by(samples, interval_s):
    table = defaultdict(list)
    for t, endpoint, latency, outcome in samples:
        table[(interval_of(t, interval_s), endpoint)].append((latency, outcome))
    return table


def report(soak, args, seconds):
    interval_s = args.interval_minutes * 60
    warmup_s = args.warmup_minutes * 60
    intervals = math.ceil(seconds / interval_s)
    steady = [k for k in range(intervals) if k * interval_s >= warmup_s]
    endpoints = sorted({s[1] for s in soak.samples}, key=lambda e: (e != BASELINE, e))
    table = rows_by(soak.samples, interval_s)

    def p(k, endpoint, q, ok_only=False):
        values = [lat for lat, outcome in table.get((k, endpoint), [])
                  if outcome == "ok" or not ok_only]
        return percentile(values, q)

    print()
    print("Per interval and endpoint (latency from the scheduled time, all answers; "
          f"x{BASELINE} = p99 / {BASELINE} p99 of the same interval)")
    for k in range(intervals):
        lags = [lag for t, lag in soak.lags if interval_of(t, interval_s) == k]
        label = "warm-up" if k not in steady else "steady"
        print(f"interval {k + 1} ({label}, {k * interval_s / 60:g}-"
              f"{min(seconds, (k + 1) * interval_s) / 60:g} min; client start lag p99 "
              f"{percentile(lags, 99):.1f} ms, max {max(lags, default=float('nan')):.1f} ms)")
        print(f"  {'endpoint':<20} {'count':>6} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} "
              f"{'p99 ms':>8} {'x' + BASELINE:>9}")
        base = p(k, BASELINE, 99)
        for endpoint in endpoints:
            cells = table.get((k, endpoint), [])
            errors = sum(1 for _, outcome in cells if outcome != "ok")
            p99 = p(k, endpoint, 99)
            print(f"  {endpoint:<20} {len(cells):>6} {errors:>6} {p(k, endpoint, 50):>8.1f} "
                  f"{p(k, endpoint, 95):>8.1f} {p99:>8.1f} {p99 / base:>9.1f}")

    print()
    print("Memory (RSS, MB) and CPU (% of one core): server = the ASGI server, worker = manage.py "
          "db_worker; host load = the machine's 1-minute load average, max in the interval")
    print(f"  {'interval':<10} {'server start':>12} {'end':>7} {'max':>7} {'CPU %':>6}   "
          f"{'worker start':>12} {'end':>7} {'max':>7} {'CPU %':>6}   {'host load':>9}")
    for k in range(intervals):
        rows = [r for r in soak.rss if min(interval_of(r[0], interval_s), intervals - 1) == k]
        if not rows:
            continue
        cols = []
        for index in (1, 2):
            values = [r[index] for r in rows]
            spent = rows[-1][index + 2] - rows[0][index + 2]
            busy = 100 * spent / (rows[-1][0] - rows[0][0]) if len(rows) > 1 else float("nan")
            cols.append(f"{values[0]:>12.1f} {values[-1]:>7.1f} {max(values):>7.1f} {busy:>6.0f}")
        print(f"  {k + 1:<10} {cols[0]}   {cols[1]}   {max(r[5] for r in rows):>9.1f}")
    growth = {}
    for index, name in ((1, "server"), (2, "worker")):
        points = [(r[0], r[index]) for r in soak.rss if r[0] >= warmup_s]
        slope, first = slope_per_hour(points)
        growth[name] = (slope, first)
        end = points[-1][1] - points[0][1] if points else float("nan")
        print(f"  {name} after warm-up: {first:.1f} -> {points[-1][1] if points else 0:.1f} MB "
              f"({end:+.1f} MB over {(points[-1][0] - points[0][0]) / 60 if points else 0:.1f} "
              f"min); trend {slope:+.1f} MB/h = {100 * slope / first:+.1f} %/h")

    print()
    print(f"p99 per interval relative to the first steady interval ({steady[0] + 1 if steady else '-'}"
          f"); * = outside +/-{args.p99_tolerance:g}%, "
          f"( ) = fewer than {args.min_samples} answers, not judged")
    print(f"  {'endpoint':<20} " + " ".join(f"{k + 1:>7}" for k in steady))
    unstable, judged = [], 0
    for endpoint in endpoints:
        if not steady:
            break
        first = p(steady[0], endpoint, 99)
        cells = []
        for k in steady:
            count = len(table.get((k, endpoint), []))
            ratio = p(k, endpoint, 99) / first
            few = count < args.min_samples or len(table.get((steady[0], endpoint), [])) < \
                args.min_samples
            outside = abs(ratio - 1) * 100 > args.p99_tolerance
            if not few and k != steady[0]:
                judged += 1
                if outside:
                    unstable.append((endpoint, k + 1, ratio))
            text = f"{ratio:.2f}" + ("*" if outside and not few else "")
            cells.append(f"({text})" if few else text)
        print(f"  {endpoint:<20} " + " ".join(f"{c:>7}" for c in cells))

    print()
    total_errors = sum(soak.errors.values())
    print(f"Errors: {total_errors} in {len(soak.samples)} requests")
    by_kind = Counter()
    for (_, kind), count in soak.errors.items():
        by_kind[kind] += count
    for kind, count in by_kind.most_common():
        where = ", ".join(f"{e} {c}" for (e, k), c in soak.errors.items() if k == kind)
        print(f"  {kind:<28} {count:>6}  ({where})")
        for (endpoint, error), body in soak.error_bodies.items():
            if error == kind:
                print(f"    first answer of {endpoint}: {' '.join(body.split())[:200]}")

    print()
    print("Live frames (watchers open all along; one frame per accepted machine report is "
          "expected on its machine's last-run socket and on the status socket)")
    all_accepted = sum(m.accepted for m in soak.machines)
    missing = extra = 0
    for kind in ("machine last", "machine status"):
        expected_total = received_total = sockets = 0
        for watcher in soak.watchers:
            if watcher.kind != kind or watcher.interrupted:
                continue
            expected = watcher.machine.accepted if watcher.machine else all_accepted
            sockets += 1
            expected_total += expected
            received_total += watcher.frames
            missing += max(0, expected - watcher.frames)
            extra += max(0, watcher.frames - expected)
        print(f"  {kind} sockets ({sockets} not interrupted): {received_total} frames received, "
              f"{expected_total} expected")
    print(f"  missing {missing}, extra {extra} (extra: a report the client gave up on was "
          f"stored all the same)")
    frames = sum(w.frames for w in soak.watchers if w.kind == "metrics")
    print(f"  metrics socket: {frames} frames (throttled per project: not counted against writes)")
    interrupted = sum(1 for w in soak.watchers if w.interrupted)
    print(f"  watchers interrupted (closed by the server or failed, then reopened): {interrupted}")
    tw = soak.trace_watch
    print(f"  trace page sockets: {tw['complete']} of {tw['watched']} watched traces seen "
          f"complete, {tw['frames']} frames")
    frames_ok = missing == 0 and tw["complete"] == tw["watched"] and interrupted == 0

    print()
    server_growth = growth["server"][0] / growth["server"][1] * 100
    memory_ok = server_growth <= args.memory_tolerance
    print(f"{'PASS' if memory_ok else 'FAIL'} flat memory: server RSS trend after warm-up "
          f"{server_growth:+.1f} %/h (target <= {args.memory_tolerance:g} %/h)")
    print(f"{'PASS' if total_errors == 0 and frames_ok else 'FAIL'} no errors: {total_errors} "
          f"request/socket errors, {missing} missing machine frames, "
          f"{tw['watched'] - tw['complete']} traces never seen complete")
    worst = max(unstable, key=lambda u: abs(u[2] - 1), default=None)
    verdict = "FAIL" if unstable else "PASS" if judged else "NOT JUDGED"
    print(f"{verdict} p99 stable within "
          f"{args.p99_tolerance:g}%: {judged} endpoint-intervals judged, {len(unstable)} outside"
          + (f" (worst: {worst[0]} interval {worst[1]} at {worst[2]:.2f})" if worst else ""))


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (WARNING|ERROR|CRITICAL) (\S+) (.*)$")


def stalls(soak, args, probes):
    """Bursts: runs of seconds in which at least half the requests scheduled took over
    --stall-ms; for each (the first 20), what the probes saw from 2 s before to 3 s after."""
    by_second = defaultdict(list)
    for t, _, latency, _ in soak.samples:
        by_second[int(t)].append(latency)
    slow = sorted(second for second, latencies in by_second.items()
                  if sum(1 for lat in latencies if lat > args.stall_ms) * 2 >= len(latencies))
    bursts = []
    for second in slow:
        if bursts and second - bursts[-1][1] <= 2:
            bursts[-1][1] = second
        else:
            bursts.append([second, second])
    print()
    print(f"Stalls: {len(bursts)} bursts of seconds in which at least half the requests took over "
          f"{args.stall_ms:g} ms; around each (2 s before to 3 s after), the worst the probes saw: "
          f"client = this process, server/worker = their processes (gcN = a collection of "
          f"generation N, late = a thread woke up late: no GIL or no CPU), db commit = a commit on "
          f"its own connection, "
          f"host = CPU/IO pressure stall ms per second (PSI)")

    def worst(events, a, b):
        return max(((ms, kind) for t, kind, ms in events if a <= t <= b), default=(0.0, "-"))

    if bursts:
        print(f"  {'at min':>7} {'s':>3} {'slow':>5} {'max ms':>7} {'client start lag':>16} "
              f"{'client':>13} {'server':>13} {'worker':>13} {'db commit':>9} "
              f"{'host cpu/io':>11}")
    for first, last in bursts[:20]:
        a, b = first - 2, last + 3
        latencies = [lat for second in range(first, last + 1) for lat in by_second[second]]
        lag = max((lag for t, lag in soak.lags if a <= t <= b), default=0.0)
        cells = []
        for name in ("client", "server", "worker"):
            ms, kind = worst(probes[name], a, b)
            cells.append(f"{kind} {ms:.0f}" if ms else "-")
        commit = max((ms for t, ms in soak.db_probe if a <= t <= b), default=0.0)
        cpu = max((c for t, c, _ in soak.pressure if a <= t <= b), default=0.0)
        io = max((i for t, _, i in soak.pressure if a <= t <= b), default=0.0)
        print(f"  {first / 60:>7.2f} {last - first + 1:>3} "
              f"{sum(1 for lat in latencies if lat > args.stall_ms):>5} {max(latencies):>7.0f} "
              f"{lag:>16.0f} {cells[0]:>13} {cells[1]:>13} {cells[2]:>13} {commit:>9.0f} "
              f"{cpu:>5.0f}/{io:<5.0f}")
    quiet = [ms for t, ms in soak.db_probe
             if not any(first - 2 <= t <= last + 3 for first, last in bursts)]
    if len(bursts) > 20:
        print(f"  ... and {len(bursts) - 20} more")
    print(f"  {'outside the bursts' if bursts else 'whole run'}: db commit p50 "
          f"{percentile(quiet, 50):.1f} ms, p99 {percentile(quiet, 99):.1f} ms; "
          "probe events in the whole run (count, worst): "
          + "; ".join(f"{name} " + (", ".join(
              f"{kind} {len(hits)} ({max(hits):.0f} ms)" for kind, hits in sorted(
                  group_by_kind(events).items())) or "none") for name, events in probes.items()))


def group_by_kind(events):
    kinds = defaultdict(list)
    for _, kind, ms in events:
        kinds[kind].append(ms)
    return kinds


def log_problems(text):
    """Counts of the server log's warnings and errors, by level, logger and message (numbers
    made N, so that one kind of message counts as one)."""
    counts = Counter()
    for line in text.splitlines():
        if match := LOG_LINE.match(line):
            level, logger, message = match.groups()
            counts[(level, logger, re.sub(r"\d+", "N", message)[:90])] += 1
    return counts


def slope_per_hour(points):
    """Least-squares trend of (seconds, MB) in MB/h, and the first value."""
    if len(points) < 2:
        return float("nan"), points[0][1] if points else float("nan")
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    slope = sum((t - mt) * (v - mv) for t, v in points) / var if var else 0.0
    return slope * 3600, points[0][1]


def write_samples(soak, path):
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["t_s", "series", "value", "outcome"])
        writer.writerows((f"{t:.3f}", endpoint, f"{latency:.2f}", outcome)
                         for t, endpoint, latency, outcome in soak.samples)
        for t, *values in soak.rss:
            writer.writerows((f"{t:.3f}", series, f"{value:.2f}", "")
                             for series, value in zip(("rss server MB", "rss worker MB",
                                                       "cpu server s", "cpu worker s",
                                                       "host load"), values))


def start_worker(env):
    """The notification worker as the Procfile runs it; returns (process, its log's path)."""
    fd, log_path = tempfile.mkstemp(prefix="soak-worker-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", "db_worker", "--queue-name", "*", "--interval", "1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log_path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60, help="length of the run, warm-up included")
    parser.add_argument("--interval-minutes", type=float, default=10, help="one report row per interval")
    parser.add_argument("--warmup-minutes", type=float, default=10,
                        help="not judged: memory trend and p99 reference start after it")
    parser.add_argument("--rate", type=float, default=40, help="requests per second, all kinds")
    parser.add_argument("--machines", type=int, default=8, help="test machines reporting")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432",
                        help="PostgreSQL server (a fresh database is created and dropped) or a "
                             "database URL (used as it is, kept)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13",
                        help="Redis db for the channel layer and cache; only the run's own keys "
                             "are deleted after")
    parser.add_argument("--no-worker", action="store_true", help="do not run manage.py db_worker")
    parser.add_argument("--timeout", type=float, default=30, help="seconds before a request counts "
                                                                   "as a timeout")
    parser.add_argument("--sample-seconds", type=float, default=5, help="RSS sampling period")
    parser.add_argument("--samples", default=os.path.join(
        tempfile.gettempdir(), time.strftime("soak-%Y%m%d-%H%M%S.csv")),
        help="CSV of every request and RSS sample")
    parser.add_argument("--memory-tolerance", type=float, default=10,
                        help="flat memory: most server RSS growth after warm-up, %%/h")
    parser.add_argument("--p99-tolerance", type=float, default=20,
                        help="p99 stable: most change from the first steady interval, %%")
    parser.add_argument("--min-samples", type=int, default=100,
                        help="an endpoint's interval with fewer answers is shown, not judged")
    parser.add_argument("--stall-ms", type=float, default=300,
                        help="a second is part of a stall when half its requests took longer")
    args = parser.parse_args()
    seconds = args.minutes * 60
    if args.warmup_minutes >= args.minutes:
        parser.error("--warmup-minutes must be shorter than --minutes")

    print(f"soak: {args.minutes:g} min at {args.rate:g} req/s (warm-up {args.warmup_minutes:g} "
          f"min, rows of {args.interval_minutes:g} min), {args.machines} machines; "
          f"{machine_header()}", flush=True)
    with soak_database(args.database_url) as (url, fresh):
        prefix = f"soak_{os.getpid()}"
        project = json.loads(manage(url, "create_project", "Soak"))
        token = manage(url, "machine_token", "create", "soak").strip()
        probe_dir = tempfile.mkdtemp(prefix="soak-probes-")
        probe_logs = {name: os.path.join(probe_dir, f"{name}.log")
                      for name in ("client", "server", "worker")}
        soak_probe.install(probe_logs["client"])
        env = {"DATABASE_URL": url, "REDIS_URL": args.redis_url, "REDIS_PREFIX": prefix,
               "SECRET_KEY": "soak-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
               "DEBUG": "False", "STATIC_MANIFEST": "False", "DASHBOARDS_PUBLIC": "True",
               "TM_ALLOW_ANONYMOUS_MACHINES": "False", "LOG_LEVEL": "WARNING",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(PROBE_DIR),
                                                           os.environ.get("PYTHONPATH")])),
               "SOAK_PROBE_LOG": probe_logs["server"]}
        server = Server(env).start()
        server.env.pop("DB_DEFAULT", None)
        worker = None
        worker_log = "-"
        try:
            if not args.no_worker:
                worker, worker_log = start_worker({**server.env,
                                                   "SOAK_PROBE_LOG": probe_logs["worker"]})
            print(f"server pid {server.process.pid} on {server.url}"
                  + (f", worker pid {worker.pid}" if worker else ", no worker")
                  + f"; database {urlsplit(url).path.strip('/')}"
                  + (" (fresh)" if fresh else "") + f"; Redis {args.redis_url} prefix {prefix}",
                  flush=True)
            soak = Soak(server, args, [Machine(f"soak-{n:02d}") for n in range(args.machines)],
                        project, token)
            pids = [server.process.pid, worker.pid if worker else -1]
            asyncio.run(soak.run(seconds, pids))
            alive = server.process.poll() is None and (worker is None or worker.poll() is None)
        finally:
            if worker and worker.poll() is None:
                worker.terminate()
                worker.wait(10)
            server.stop()
            deleted = delete_redis_keys(args.redis_url, prefix)
        print(f"end: {machine_header()}; server and worker alive to the end: {alive}; "
              f"{deleted} Redis keys of the run deleted")
        write_samples(soak, args.samples)
        report(soak, args, seconds)
        stalls(soak, args, {name: soak_probe.read(path, soak.started_unix)
                            for name, path in probe_logs.items()})
        problems = log_problems(server.output())
        print(f"\nServer log: {sum(problems.values())} warnings and errors")
        for (level, logger, message), count in problems.most_common(8):
            print(f"  {count:>6} {level:<7} {logger}: {message}")
        print(f"\nsamples: {args.samples} (t_s,series,value,outcome; value = latency ms or RSS MB)")
        print(f"server log: {server.log.name}; worker log: {worker_log}")


if __name__ == "__main__":
    main()
