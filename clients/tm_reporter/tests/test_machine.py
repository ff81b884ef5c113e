"""The virtual testing machine and the HTTP client, against a real Monitor server."""

import http.server
import json
import threading
import time

import pytest
import requests

from tm_reporter import Reporter, ReportError
from tm_reporter.machine import VirtualMachine, outcome, plan_from_directory

pytestmark = pytest.mark.integration


def write_suite(root):
    suite = root / "suite"
    (suite / "scenario_01_lamp").mkdir(parents=True)
    (suite / "scenario_02_door").mkdir()
    (suite / "__master__.py").write_text("# master\n")
    (suite / "scenario_01_lamp.py").write_text("# lamp scenario\n")
    (suite / "scenario_01_lamp" / "01_test_on.py").write_text("assert 1 + 1 == 2\n")
    (suite / "scenario_01_lamp" / "02_test_off.py").write_text("assert False, 'still on'\n")
    (suite / "scenario_02_door" / "01_test_open.py").write_text("raise RuntimeError('jammed')\n")
    (suite / "scenario_02_door" / "02_test_close.py").write_text("STATUS = 'warning'\n")
    return suite


def test_outcomes_of_a_test():
    def boom():
        raise KeyError("x")

    def fails():
        raise AssertionError

    assert outcome(lambda: None) == "passed"
    assert outcome(fails) == "failed"
    assert outcome(boom) == "error"
    assert outcome(lambda: "warning") == "warning"
    assert outcome(lambda: "great") == "unknown"


def test_a_suite_runs_against_a_live_server_and_an_error_does_not_stop_it(server_factory,
                                                                          tmp_path):
    from tm_api.auth import issue_token

    _, secret = issue_token("lab")
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="False", DASHBOARDS_PUBLIC="True")
    plan = plan_from_directory(write_suite(tmp_path))
    counts = VirtualMachine(Reporter(server.url, "vm-1", secret, timeout=5), plan).run()
    assert counts == {"passed": 1, "failed": 1, "error": 1, "warning": 1}

    machine = requests.get(server.url + "/tm_api/machines/", timeout=5).json()["results"][0]
    assert machine["machine_name"] == "vm-1" and machine["status"] == "failed"
    body = requests.get(f"{server.url}/tm_api/machine_last_data/{machine['id']}/",
                        timeout=5).json()
    scenarios = body["last_master_scenario"]["scenarios"]
    assert [s["file_name"] for s in scenarios] == ["scenario_01_lamp", "scenario_02_door"]
    assert [[t["status"] for t in s["tests"]] for s in scenarios] == [
        ["passed", "failed"], ["error", "warning"]]
    test = requests.get(f"{server.url}/tm_api/test/{scenarios[0]['tests'][0]['pk']}",
                        timeout=5).json()
    assert test["script"] == "assert 1 + 1 == 2\n"


def test_a_wrong_token_is_a_report_error(server_factory):
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="False")
    with pytest.raises(ReportError) as caught:
        Reporter(server.url, "vm", "wrong", timeout=5).dry_run({"file_path": "/", "file_name": "m",
                                                               "scenarios": []})
    assert caught.value.status_code == 401


def test_unreachable_server_fails_after_retries_with_backoff():
    reporter = Reporter("http://127.0.0.1:9", "vm", retries=2, backoff_factor=0.05, timeout=1)
    started = time.monotonic()
    with pytest.raises(ReportError):
        reporter.start("/p", "t.py")
    assert time.monotonic() - started < 5


def test_an_answer_cut_off_after_its_headers_is_retried_with_the_same_key():
    """A server killed while it sends its answer (headers out, body not): urllib3's retries are
    over by then; the reporter sends the report again, with the same Idempotency-Key."""
    keys = []

    class DiesMidAnswer(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            keys.append(self.headers["Idempotency-Key"])
            body = b'{"ok": true}'
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if len(keys) == 1:
                self.wfile.flush()
                self.close_connection = True
                return  # the body never comes: the client reads 0 of its bytes
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DiesMidAnswer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reporter = Reporter(f"http://127.0.0.1:{server.server_port}", "vm", "tok",
                            retries=2, backoff_factor=0.01)
        assert reporter.stop("/p", "t.py", "passed") == {"ok": True}
        assert len(keys) == 2 and keys[0] == keys[1]
    finally:
        server.shutdown()


def test_503_answers_are_retried(tmp_path):
    answers = [503, 503, 202]
    bodies = []

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            code = answers.pop(0)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reporter = Reporter(f"http://127.0.0.1:{server.server_port}", "vm", "tok",
                            retries=3, backoff_factor=0.01)
        assert reporter.stop("/p", "t.py", "passed") == {"ok": True}
        assert len(bodies) == 3 and bodies[0]["status"] == "passed"
    finally:
        server.shutdown()
