"""The background sender and its spool, driven directly (the plugin's tests run real sessions)."""

import contextlib
import http.server
import json
import threading
import time

import pytest

from tm_reporter import Reporter
from tm_reporter.sender import BatchSender
from tm_reporter.spool import Spool, default_path, request_body

pytestmark = pytest.mark.integration


def dry_run(*files):
    return {"type": "dry_run", "timestamp": "2024-05-01T10:00:00+00:00", "master_scenario": {
        "file_path": "/", "file_name": "m", "script": "", "scenarios": [
            {"file_path": "/", "file_name": "s", "script": "",
             "tests": [{"file_path": "/t", "file_name": f, "script": ""} for f in files]}]}}


def start(name):
    return {"type": "test_start", "file_path": "/t", "file_name": name}


def stop(name, status="passed"):
    return {"type": "test_stop", "file_path": "/t", "file_name": name, "status": status}


def test_refused_reports_are_counted_and_not_sent_again(server_factory, tmp_path):
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True")
    sender = BatchSender(Reporter(server.url, "rack", retries=0),
                         Spool(tmp_path / "spool.jsonl")).start()
    for report in [dry_run("a.py"), start("a.py"), stop("a.py"), stop("a.py"), start("b.py")]:
        sender.put(report)
    sender.finish(30)
    assert (sender.results_sent, sender.refused_count, sender.kept) == (1, 2, 0)
    line = sender.summary(tmp_path / "spool.jsonl")
    assert line.startswith("tm-reporter: 1 results sent, 2 reports refused by the server "
                           "(test_stop a.py: Machine 'rack' has no running test /t/a.py")
    assert Spool(tmp_path / "spool.jsonl").take_over() == []


class OlderServer(http.server.BaseHTTPRequestHandler):
    """A server from before the batch endpoint: the per-report endpoints only."""

    posts = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/tm_api/batch/":
            self.send_response(404)
            self.end_headers()
            return
        self.posts.append((self.path, self.headers["Idempotency-Key"], body))
        known = self.path != "/tm_api/test_stop/" or body["file_name"] != "ghost.py"
        self.send_response(202 if known else 409)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}" if known else b'{"detail": "no running test"}')

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler):
    """A local HTTP server of `handler` (a BaseHTTPRequestHandler) while inside; its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_a_server_without_the_batch_endpoint_gets_each_report_on_its_own(tmp_path):
    with serving(OlderServer) as url:
        sender = BatchSender(Reporter(url, "rack", retries=0), Spool(tmp_path / "s.jsonl"))
        sender.start()
        for report in [dry_run("a.py"), start("a.py"), stop("a.py"), stop("ghost.py")]:
            sender.put(report)
        sender.finish(30)
    paths = [path for path, _, _ in OlderServer.posts]
    assert paths == ["/tm_api/dry_run/", "/tm_api/test_start/", "/tm_api/test_stop/",
                     "/tm_api/test_stop/"]
    keys = [key for _, key, _ in OlderServer.posts]
    batch_key = keys[0].rsplit(".", 1)[0]
    assert keys == [f"{batch_key}.{n}" for n in range(4)]
    assert all(body["machine_name"] == "rack" and "type" not in body
               for _, _, body in OlderServer.posts)
    assert (sender.results_sent, sender.refused_count, sender.kept) == (1, 1, 0)


class SlowBatchServer(http.server.BaseHTTPRequestHandler):
    """The batch endpoint of a server that takes 0.15 s per batch: reports come faster than it
    applies them."""

    batches = []
    delay = 0.15

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(self.delay)
        self.batches.append(body["reports"])
        answer = json.dumps({"results": [{"status": 202} for _ in body["reports"]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def stops_in_bursts(server, tmp_path, burst, pause, **options):
    """1,000 stops put `burst` at a time every `pause` seconds to a sender posting to `server`
    (a handler class); (the sender after finish(), the batches the server got). The batches
    hold every report once, in order."""
    with serving(server) as url:
        sender = BatchSender(Reporter(url, "rack", retries=0), Spool(tmp_path / "s.jsonl"),
                             journal_delay=30, **options).start()
        reports = [stop(f"test_{n}.py") for n in range(1000)]
        for first in range(0, 1000, burst):
            for report in reports[first:first + burst]:
                sender.put(report)
            time.sleep(pause)
        sender.finish(30)
    assert [report for batch in server.batches for report in batch] == reports
    return sender, server.batches


def test_a_backlog_goes_out_in_full_batches_and_in_order(tmp_path):
    # 1,000 reports in about 1.5 s
    sender, sent = stops_in_bursts(SlowBatchServer, tmp_path, 7, 0.01, interval=0.05,
                                   max_batch=50)
    # Each request used to take what had come meanwhile as a batch of its own: a small batch
    # behind every full one (15 of 27 batches here). Now a batch is partial only when nothing
    # waited behind it: at the start, before the backlog builds, and the last.
    assert sum(1 for batch in sent if len(batch) < 50) <= 4, [len(batch) for batch in sent]
    assert (sender.results_sent, sender.kept) == (1000, 0)


class FastBatchServer(SlowBatchServer):
    """The batch endpoint of a server that answers in 20 ms: a few reports come during each
    request, far fewer than a batch."""

    batches = []
    delay = 0.02


def test_against_a_fast_server_reports_wait_for_the_interval_or_a_full_batch(tmp_path):
    # Sending what came during each round trip at once made one small batch per round trip:
    # the faster the server, the more requests the session paid for.
    # 1,000 reports in about 1 s
    sender, sent = stops_in_bursts(FastBatchServer, tmp_path, 5, 0.005, interval=0.25,
                                   max_batch=100)
    # 10 full batches, and a partial one at most every interval (1 s / 0.25 s) and at the end.
    assert len(sent) <= 16, [len(batch) for batch in sent]
    assert (sender.results_sent, sender.kept) == (1000, 0)


def batch(key, *names):
    return {"key": key, "at": 1.0, "machine_name": "rack", "reports": [stop(n) for n in names]}


def test_two_sessions_at_once_never_take_the_same_batches(tmp_path):
    path = tmp_path / "spool.jsonl"
    first = Spool(path)
    assert first.take_over() == []
    first.keep([batch("k1", "a.py"), batch("k2", "b.py")])

    running, meanwhile = Spool(path), Spool(path)
    assert [b["key"] for b in running.take_over()] == ["k1", "k2"]
    assert meanwhile.take_over() == []  # the first session holds them in its journal
    running.answered("k1")
    running.keep([batch("k2", "b.py")])
    meanwhile.keep([batch("k3", "c.py")])
    assert [b["key"] for b in Spool(path).take_over()] == ["k2", "k3"]


def test_the_journal_of_a_dead_session_is_taken_over_without_what_was_answered(tmp_path):
    path = tmp_path / "spool.jsonl"
    dead = Spool(path)
    dead.take_over()
    dead.formed(batch("k1", "a.py"))
    dead.formed(batch("k2", "b.py"))
    dead.answered("k1")
    dead._journal.write('{"key": "k3", "rep')  # torn by the kill
    dead._journal.close()  # the process is gone: its lock with it
    heir = Spool(path)
    assert [b["key"] for b in heir.take_over()] == ["k2"]
    assert list(tmp_path.glob("spool.jsonl.*.session")) == [heir.journal_path]


def test_a_batch_encoded_once_reads_back_whole_from_the_journal_and_the_spool(tmp_path):
    """The sender encodes a batch's request body once (a session's dry run is a megabyte of
    JSON, on the path of the answer the session waits for); its journal and spool lines are
    made from that body, not encoded again, and read back as the batch."""
    odd = batch("k1", "tést ✓.py", 'a "quote", a \\ and a\nnewline.py')
    odd["at"] = 1733565600.123456
    body = request_body(odd)
    assert json.loads(body) == {"machine_name": "rack", "reports": odd["reports"]}
    path = tmp_path / "spool.jsonl"
    dead = Spool(path)
    dead.take_over()
    dead.formed(odd, body)
    dead._journal.close()  # killed
    heir = Spool(path)
    assert heir.take_over() == [odd]
    heir.keep([odd], {"k1": body})
    assert Spool(path).take_over() == [odd]


def test_the_default_spool_is_one_file_per_server_and_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("TM_SPOOL_DIR", str(tmp_path))
    one = default_path("http://ci.example:8000", "rack 3")
    assert one.parent == tmp_path and one.name.startswith("rack_3_ci.example_8000-")
    assert default_path("http://ci.example:8000/", "rack 3") == one
    assert default_path("http://ci.example:8000", "rack 4") != one
    assert default_path("http://other:8000", "rack 3") != one
