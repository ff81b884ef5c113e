"""kill -9 of the server while 20 clients stream: every acknowledged item is stored, and clients
that retry finish their work without duplicates.

Twenty clients run at once against a real daphne process: 8 send traces over the acknowledged
websocket protocol (trace_client, `?ack=1`), 6 are test machines reporting dry runs, starts and
stops (tm_reporter: Idempotency-Key on every report, urllib3 retries), 6 are trackers posting
batches to /api/tracking/ingest/ (an Idempotency-Key per batch, retried until answered). The server
is killed with SIGKILL twice while they work and started again on the same port. The clients
only retry; then every item is checked in the database, exactly once.

"Acknowledged" is what a client is told (README, "Acknowledged means stored"): for a trace frame
{"ack": seq} and then "Trace stored"; for a machine report its 201/202; for a batch the
`accepted` count of its 200.

CRASH_SECONDS (default 9) sets how long the clients work; CRASH_KILLS (default 2) the kills.
"""

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter

import pytest
import requests

from plumbing.devserver import Server, free_port
from tm_api.auth import issue_token
from tm_api.models import Run, Test
from tm_reporter.client import Reporter, tree
from trace_client.client import STORED, TraceConnection
from traces.models import Event, Span, Trace
from tracking.models import Project, RequestMetric

pytestmark = [pytest.mark.integration]

SECONDS = float(os.environ.get("CRASH_SECONDS", "9"))
KILLS = int(os.environ.get("CRASH_KILLS", "2"))
TRACE_CLIENTS, MACHINES, TRACKERS = 8, 6, 6
RETRY_FOR = 90.0  # how long a client keeps retrying (a restart takes a few seconds)


class Clients:
    """What the clients were told (acknowledged), and what went wrong for them."""

    def __init__(self, deadline):
        self.deadline = deadline
        self.lock = threading.Lock()
        self.traces = {}  # trace id -> (span group ids, event names) acknowledged as stored
        self.trace_frames = 0
        self.trace_reconnects = 0
        self.reports = {}  # machine -> list of (run number, test, final status or None)
        self.report_count = 0
        self.dry_runs = Counter()  # machine -> dry runs acknowledged
        self.batches = Counter()  # project id -> events acknowledged (accepted)
        self.batch_retries = 0
        self.errors = []

    def working(self):
        return time.monotonic() < self.deadline


def trace_client(server_url, clients: Clients, number: int):
    sequence = 0
    while clients.working():
        sequence += 1
        trace_id = number * 1_000_000 + sequence
        connection = TraceConnection(server_url, trace_id, timeout=5, acks=True,
                                     retry_for=RETRY_FOR)
        spans, events, frames = [], [], 0
        connection.send([{"type": "TRACE_START", "timestamp": 1, "group_id": "t"}])
        for index in range(12):
            group = f"s{index}"
            spans.append(group)
            events.append(f"e{index}")
            connection.send([
                {"type": "SPAN_START", "timestamp": 1 + index, "group_id": group, "name": group},
                {"type": "EVENT", "timestamp": 1 + index, "name": f"e{index}"},
                {"type": "SPAN_END", "timestamp": 2 + index, "group_id": group},
            ])
            frames += 1
            time.sleep(0.03)
        connection.send([{"type": "TRACE_END", "timestamp": 20, "group_id": "t"}])
        reply = connection.wait_for_reply()
        connection.close()
        assert reply == {"message": STORED}, reply
        with clients.lock:
            clients.traces[trace_id] = (sorted(spans), sorted(events))
            clients.trace_frames += frames + 2
            clients.trace_reconnects += connection.reconnects


def machine(server_url, token, clients: Clients, number: int):
    name = f"crash-machine-{number}"
    reporter = Reporter(server_url, name, token=token, timeout=5, retries=12, backoff_factor=0.2)
    runs = 0
    try:
        while clients.working():
            tests = [tree(f"/suite/{number}", f"test_{i}.py") for i in range(5)]
            reporter.dry_run(tree("/suite", "master.py", children=[
                tree("/suite", "scenario.py", children=tests, children_key="tests")],
                children_key="scenarios"))
            runs += 1
            with clients.lock:
                clients.dry_runs[name] += 1
                clients.report_count += 1
            for i, test in enumerate(tests):
                reporter.start(test["file_path"], test["file_name"])
                status = "passed" if i % 2 == 0 else "failed"
                reporter.stop(test["file_path"], test["file_name"], status)
                with clients.lock:
                    clients.reports.setdefault(name, []).append((runs, i, status))
                    clients.report_count += 2
                time.sleep(0.03)
    finally:
        reporter.close()


def tracker(server_url, token, project_id, clients: Clients, number: int):
    session = requests.Session()
    batch = 0
    while clients.working():
        batch += 1
        events = [{"time": time.time(), "duration_ms": 1.5, "method": "GET",
                   "path": f"/crash/{number}/{batch}/{i}", "status": 200} for i in range(20)]
        body = json.dumps({"events": events})
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                   "Idempotency-Key": uuid.uuid4().hex}
        give_up, delay = time.monotonic() + RETRY_FOR, 0.05
        while True:
            try:
                answer = session.post(f"{server_url}/api/tracking/ingest/", data=body,
                                      headers=headers, timeout=5)
                if answer.status_code == 200:
                    break
                assert answer.status_code in (429, 502, 503), (answer.status_code, answer.text)
            except requests.RequestException:
                pass
            assert time.monotonic() < give_up, "tracker gave up"
            with clients.lock:
                clients.batch_retries += 1
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        with clients.lock:
            clients.batches[project_id] += answer.json()["accepted"]
        time.sleep(0.05)


def run(clients, target, *args):
    try:
        target(*args)
    except BaseException as error:  # noqa: BLE001 - reported by the test
        with clients.lock:
            clients.errors.append(f"{target.__name__}{args[-1]}: {error!r}")


def test_kill_9_while_20_clients_stream_loses_and_doubles_nothing(database_env, transactional_db,
                                                                   capsys):
    machine_tokens = [issue_token(f"crash-{i}")[1] for i in range(MACHINES)]
    projects = [Project.create_with_token(f"crash-{i}") for i in range(TRACKERS)]
    port = free_port()
    env = {**database_env, "TM_ALLOW_ANONYMOUS_MACHINES": "False"}
    server = Server(env, port=port).start()
    started = time.monotonic()
    clients = Clients(deadline=started + SECONDS)
    threads = [threading.Thread(target=run, args=(clients, trace_client, server.url, clients, n))
               for n in range(TRACE_CLIENTS)]
    threads += [threading.Thread(target=run, args=(clients, machine, server.url, token, clients, n))
                for n, token in enumerate(machine_tokens)]
    threads += [threading.Thread(target=run, args=(clients, tracker, server.url, token, project.pk,
                                                   clients, n))
                for n, (project, token) in enumerate(projects)]
    for thread in threads:
        thread.start()
    outages = []
    try:
        for kill in range(KILLS):
            time.sleep(max(0.0, started + SECONDS * (kill + 1) / (KILLS + 1) - time.monotonic()))
            with clients.lock:
                acknowledged_before = (len(clients.traces), clients.report_count,
                                       sum(clients.batches.values()))
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait()
            down = time.monotonic()
            time.sleep(0.5)
            server = Server(env, port=port).start()
            outages.append(time.monotonic() - down)
            # Each kind of client had work acknowledged before each kill.
            assert all(acknowledged_before), acknowledged_before
        for thread in threads:
            thread.join(RETRY_FOR + 30)
        assert not [t for t in threads if t.is_alive()], "clients still running"
    finally:
        server.stop()
    assert not clients.errors, clients.errors

    # Traces: every acknowledged trace complete, with each span and event exactly once.
    stored_traces = {t.id: t.status for t in Trace.objects.filter(id__in=clients.traces)}
    assert stored_traces == {trace_id: "complete" for trace_id in clients.traces}
    spans, events = {}, {}
    for trace_id, group in Span.objects.filter(trace_id__in=clients.traces).values_list(
            "trace_id", "group_id"):
        spans.setdefault(trace_id, []).append(group)
    for trace_id, name in Event.objects.filter(trace_id__in=clients.traces).values_list(
            "trace_id", "name"):
        events.setdefault(trace_id, []).append(name)
    stored = {trace_id: (sorted(spans.get(trace_id, [])), sorted(events.get(trace_id, [])))
              for trace_id in clients.traces}
    assert stored == clients.traces
    messages_acked = sum(len(s) * 2 + len(e) + 2 for s, e in clients.traces.values())
    messages_stored = (sum(len(s) * 2 for s, _ in stored.values()) + 2 * len(stored)
                       + sum(len(e) for _, e in stored.values()))

    # Machines: one run per acknowledged dry run, each reported test in its reported status.
    for number in range(MACHINES):
        name = f"crash-machine-{number}"
        runs = list(Run.objects.filter(machine__machine_name=name).order_by("timestamp"))
        assert len(runs) == clients.dry_runs[name], name
        expected = Counter((run_number, status) for run_number, _, status
                           in clients.reports.get(name, []))
        seen = Counter()
        for run_number, run_row in enumerate(runs, start=1):
            for status in Test.objects.filter(master_scenario__run=run_row).values_list(
                    "status", flat=True):
                if status != "waiting":
                    seen[(run_number, status)] += 1
        assert seen == expected, name
    reports_stored = Run.objects.filter(machine__machine_name__startswith="crash-machine-").count()
    reports_stored += 2 * Test.objects.filter(
        machine__machine_name__startswith="crash-machine-").exclude(status="waiting").count()

    # Tracking: every accepted event stored once.
    for project, _ in projects:
        paths = list(RequestMetric.objects.filter(project=project).values_list("path", flat=True))
        assert len(paths) == len(set(paths)) == clients.batches[project.pk], project.name

    with capsys.disabled():
        print(f"\nkill -9 x{KILLS} over {SECONDS:.0f} s, restarts took "
              + ", ".join(f"{o:.1f} s" for o in outages))
        print(f"  traces: {len(clients.traces)} acknowledged ({messages_acked} messages in "
              f"{clients.trace_frames} frames), {len(stored_traces)} stored complete "
              f"({messages_stored} messages), {clients.trace_reconnects} reconnects with resends")
        print(f"  machine reports: {clients.report_count} acknowledged, {reports_stored} stored")
        print(f"  tracking events: {sum(clients.batches.values())} acknowledged, "
              f"{RequestMetric.objects.filter(project__in=[p for p, _ in projects]).count()} "
              f"stored, {clients.batch_retries} batch retries")
