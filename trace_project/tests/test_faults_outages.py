"""Outages of Redis and PostgreSQL under a real server, with private services killed mid-test.

Redis: ingestion and REST keep answering while it is down, /healthz says so, and live frames
reach the sockets already open (and the pages, which reconnect themselves) within 5 s of Redis
being back, without a server restart.
PostgreSQL: requests during the outage answer 503 with a reason in bounded time, never hang,
and everything works again after it is back, without a server restart.

The figures printed (run with -s) are in docs/outages.md.
"""

import gzip
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
import websocket

from tm_api.tests.conftest import dry_run_payload, scenario
from traces.tests.helpers import README_EXAMPLE, STORED, span, trace_start

pytestmark = pytest.mark.integration

# A request that takes longer than this during an outage counts as hanging.
ANSWER_WITHIN = 4.0
# Live frames must reach open sockets within this after Redis is back (issue 7).
RESUME_WITHIN = 5.0


@dataclass
class Requests:
    """Requests made during an outage: their status codes and how long each took."""

    answers: list = field(default_factory=list)  # (what, status, seconds)

    def call(self, what, method, url, **kwargs):
        started = time.monotonic()
        try:
            response = requests.request(method, url, timeout=ANSWER_WITHIN + 6, **kwargs)
        except requests.RequestException as error:
            self.answers.append((what, type(error).__name__, time.monotonic() - started))
            raise
        self.answers.append((what, response.status_code, time.monotonic() - started))
        return response

    def slowest(self):
        return max(seconds for _, _, seconds in self.answers)

    def summary(self):
        ok = sum(1 for _, status, _ in self.answers if isinstance(status, int) and status < 400)
        return (f"{len(self.answers)} requests, {ok} 2xx/3xx, {len(self.answers) - ok} failed, "
                f"slowest {self.slowest():.3f} s")


def frames_until(ws, predicate, deadline, poke=None, poke_every=0.5):
    """Read frames of `ws` until one matches (returned with the time it came), calling poke()
    every poke_every seconds meanwhile; None at the deadline."""
    next_poke = 0.0
    while time.monotonic() < deadline:
        if poke is not None and time.monotonic() >= next_poke:
            poke()
            next_poke = time.monotonic() + poke_every
        ws.settimeout(0.1)
        try:
            frame = json.loads(ws.recv())
        except websocket.WebSocketTimeoutException:
            continue
        if predicate(frame):
            return frame, time.monotonic()
    return None, None


def drain(ws):
    ws.settimeout(0.05)
    while True:
        try:
            ws.recv()
        except websocket.WebSocketTimeoutException:
            return


def health(url):
    response = requests.get(url + "/healthz", timeout=ANSWER_WITHIN + 6)
    return response.status_code, response.json()


def wait_health(url, status, deadline):
    while time.monotonic() < deadline:
        code, body = health(url)
        if code == status:
            return body, time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"/healthz never answered {status}: {body}")


# --- Redis --------------------------------------------------------------------------------------

def test_redis_outage_keeps_ingestion_and_rest_and_live_frames_resume(
        server_factory, private_redis, page):
    from tm_api.models import Test
    from traces.models import Span
    from tracking.models import Project, RequestMetric

    server = server_factory(REDIS_URL=private_redis.url, DASHBOARDS_PUBLIC="True",
                            TM_ALLOW_ANONYMOUS_MACHINES="True", TRACKING_LIVE_MIN_INTERVAL="0.1")
    url = server.url
    tests = [("/t", f"t{n}.py") for n in range(400)]
    assert requests.post(url + "/tm_api/dry_run/", timeout=5, json=dry_run_payload(
        "outage rack", scenarios=[scenario("s.py", *tests)])).status_code == 201
    machine = requests.get(url + "/tm_api/machines/", timeout=5).json()["results"][0]
    project, token = Project.create_with_token("Outage shop")
    trace_id = 7001
    counter = {"test": 0, "span": 0}

    def start_next_test(calls):
        path, name = tests[counter["test"]]
        counter["test"] += 1
        body = {"machine_name": "outage rack", "file_path": path, "file_name": name}
        response = calls.call("tm test_start", "POST", url + "/tm_api/test_start/", json=body)
        assert response.status_code == 202, response.text
        response = calls.call("tm test_stop", "POST", url + "/tm_api/test_stop/",
                              json={**body, "status": "passed"})
        assert response.status_code == 202, response.text

    def ingest_batch(calls, n=3):
        body = gzip.compress(json.dumps({"events": [
            {"time": time.time(), "duration_ms": 2, "path": f"/p{i}", "status": 200}
            for i in range(n)]}).encode())
        response = calls.call("tracking batch", "POST", url + "/api/tracking/ingest/", data=body,
                              headers={"Authorization": f"Bearer {token}",
                                       "Content-Encoding": "gzip"})
        assert response.status_code == 200, response.text

    def send_span(ingest):
        counter["span"] += 1
        n = counter["span"]
        ingest.send(json.dumps(span(f"g{n}", f"span {n}", 1_700_000_000 + n,
                                    1_700_000_001 + n)))

    def reads(calls):
        for what, path in [("machine list", "/tm_api/machines/"), ("trace list", "/api/traces/"),
                           ("projects", "/api/tracking/projects/"), ("page", "/machines/")]:
            response = calls.call(what, "GET", url + path)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])

    # Pages open, as a browser would have them, and data flowing.
    ws = lambda path: websocket.create_connection(server.ws_url + path, timeout=5)
    status = ws("/ws/machine/status/")
    last = ws(f"/ws/machine/{machine['id']}/last/")
    trace_live = ws(f"/ws/traces/{trace_id}/live/")
    metrics = ws(f"/ws/metrics/{project.public_id}/")
    assert json.loads(metrics.recv())["type"] == "hello"
    ingest = ws(f"/ws/trace/{trace_id}")
    ingest.send(json.dumps([trace_start(1_700_000_000)]))
    page.goto(url + "/machines/")
    page.wait_for_selector(".live-indicator.connected")

    before = Requests()
    start_next_test(before)
    assert json.loads(status.recv())["machine_id_status"]["id"] == machine["id"]
    assert "machine_data" in json.loads(last.recv())
    ingest_batch(before)
    assert json.loads(metrics.recv())["type"] == "requests"
    send_span(ingest)
    assert json.loads(trace_live.recv())
    for sock in (status, last, metrics, trace_live):
        drain(sock)

    # Redis dies.
    private_redis.stop()
    killed = time.monotonic()
    body, detected = wait_health(url, 503, killed + 10)
    print(f"\nRedis down: /healthz 503 after {detected - killed:.3f} s: {body}")
    assert body["failing"] == ["channel_layer"] and body["database"]["ok"]
    assert "redis" in body["channel_layer"]["error"].lower() or \
        str(private_redis.port) in body["channel_layer"]["error"]

    during = Requests()
    passed_before = Test.objects.filter(status="passed").count()
    for _ in range(5):
        start_next_test(during)
        ingest_batch(during)
        send_span(ingest)
        reads(during)
    # A program that connects now to send a whole trace is served as usual.
    started = time.monotonic()
    fresh = ws("/ws/trace/7002")
    fresh.send(json.dumps(README_EXAMPLE))
    assert json.loads(fresh.recv()) == STORED
    print(f"new trace ingest socket during the outage: stored in {time.monotonic() - started:.3f} s")
    # A page that opens its live socket now is served (its subscription waits for Redis).
    late = ws("/ws/machine/status/")
    outage_health = [health(url)[0] for _ in range(3)]
    print(f"during the Redis outage: {during.summary()}; /healthz {outage_health}")
    assert all(isinstance(code, int) and code < 400 for _, code, _ in during.answers)
    assert during.slowest() < ANSWER_WITHIN
    assert outage_health == [503, 503, 503]
    # Stored, not just answered.
    assert RequestMetric.objects.filter(project=project).count() == 3 + 5 * 3
    time.sleep(0.5)  # the ingest socket's frames are stored in the background
    assert Span.objects.filter(trace_id=trace_id).count() == counter["span"]
    assert Test.objects.filter(status="passed").count() == passed_before + 5

    # Redis comes back (empty: no persistence), the server is not restarted.
    private_redis.start()
    back = time.monotonic()
    _, healthy = wait_health(url, 200, back + 10)
    print(f"Redis back: /healthz 200 after {healthy - back:.3f} s")
    after = Requests()
    deadline = back + RESUME_WITHIN + 5
    delays = {}
    frame, at = frames_until(status, lambda f: "machine_id_status" in f, deadline,
                             poke=lambda: start_next_test(after))
    delays["tm status socket"] = at and at - back
    frame, at = frames_until(late, lambda f: "machine_id_status" in f, deadline,
                             poke=lambda: start_next_test(after))
    delays["tm status socket opened during the outage"] = at and at - back
    frame, at = frames_until(last, lambda f: "machine_data" in f, deadline,
                             poke=lambda: start_next_test(after))
    delays["tm last-run socket"] = at and at - back
    frame, at = frames_until(metrics, lambda f: f.get("type") == "requests", deadline,
                             poke=lambda: ingest_batch(after))
    delays["tracking metrics socket"] = at and at - back
    frame, at = frames_until(trace_live, lambda f: True, deadline,
                             poke=lambda: send_span(ingest))
    delays["trace live socket"] = at and at - back
    # The page: its socket was open all along, or reconnected by live.js.
    page_started = time.monotonic()
    start_next_test(after)
    done = f"{counter['test']}/{len(tests)}"
    page.wait_for_function(
        "done => document.querySelector('tr[data-machine-id] .done').textContent === done",
        arg=done, timeout=int((deadline - page_started) * 1000))
    delays["machines page (Chromium)"] = time.monotonic() - back
    print("live frames after Redis came back (s after restart): "
          + ", ".join(f"{k} {v:.3f}" if v else f"{k} NONE" for k, v in delays.items()))
    print(f"after: {after.summary()}")
    assert all(v is not None and v < RESUME_WITHIN for v in delays.values()), delays
    for sock in (status, last, metrics, trace_live, ingest, late, fresh):
        sock.close()


# --- PostgreSQL ---------------------------------------------------------------------------------

# Bound of recovery after PostgreSQL is back: the pool's connections are checked when taken.
RECOVER_WITHIN = 5.0
# How long PostgreSQL stays down at least.
OUTAGE_SECONDS = {"fast": 8.0, "immediate": 0.0}


def send_whole_trace(server, trace_id, close_within=1.0):
    """README_EXAMPLE over a new ingest socket: (reply, close code or None, seconds to reply)."""
    started = time.monotonic()
    sock = websocket.create_connection(f"{server.ws_url}/ws/trace/{trace_id}",
                                       timeout=ANSWER_WITHIN + 6)
    try:
        sock.send(json.dumps(README_EXAMPLE))
        reply = json.loads(sock.recv())
        seconds = time.monotonic() - started
        sock.settimeout(close_within)
        try:
            opcode, data = sock.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return reply, None, seconds
        code = int.from_bytes(data[:2], "big") if opcode == websocket.ABNF.OPCODE_CLOSE else None
        return reply, code, seconds
    finally:
        sock.close()


def database_unavailable(response):
    """503 with the API's error shape and a reason naming the database."""
    if response.status_code != 503:
        return False
    if "json" not in response.headers.get("Content-Type", ""):
        return "database" in response.text.lower()
    body = response.json()
    return (set(body) >= {"detail", "code"} and body["code"] == "database_unavailable"
            and "database" in body["detail"].lower())


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgresql_restart_answers_503_with_a_reason_then_recovers(private_postgres, mode):
    from plumbing.devserver import Server

    pg = private_postgres
    if not hasattr(pg, "tracking_token"):  # one project for the session's cluster
        pg.tracking_token = pg.run_django(
            "from tracking.models import Project\n"
            "p, t = Project.create_with_token('pg outage')\n"
            "print(t)").split()[-1]
    token = pg.tracking_token
    server = Server({"DB_DEFAULT": pg.db_default(), "REDIS_URL": "", "DASHBOARDS_PUBLIC": "True",
                     "TM_ALLOW_ANONYMOUS_MACHINES": "True"}).start()
    url = server.url
    tests = [("/t", f"t{n}.py") for n in range(200)]
    counter = {"test": 0, "trace": {"fast": 9000, "immediate": 9500}[mode]}

    def dry_run(calls):
        return calls.call("tm dry_run", "POST", url + "/tm_api/dry_run/", json=dry_run_payload(
            "pg rack", scenarios=[scenario("s.py", *tests)]))

    def test_start(calls):
        path, name = tests[counter["test"] % len(tests)]
        counter["test"] += 1
        return calls.call("tm test_start", "POST", url + "/tm_api/test_start/",
                          json={"machine_name": "pg rack", "file_path": path, "file_name": name})

    def batch(calls):
        body = gzip.compress(json.dumps({"events": [
            {"time": time.time(), "duration_ms": 2, "path": "/p", "status": 200}]}).encode())
        return calls.call("tracking batch", "POST", url + "/api/tracking/ingest/", data=body,
                          headers={"Authorization": f"Bearer {token}",
                                   "Content-Encoding": "gzip"})

    def trace_list(calls):
        return calls.call("trace list", "GET", url + "/api/traces/")

    def machines(calls):
        return calls.call("machine list", "GET", url + "/tm_api/machines/")

    def page(calls):
        return calls.call("machines page", "GET", url + "/machines/")

    everything = [dry_run, test_start, batch, trace_list, machines, page]

    def send_trace():
        """A whole trace over a new ingest socket: (reply, close code or None, seconds)."""
        counter["trace"] += 1
        return send_whole_trace(server, counter["trace"])

    try:
        before = Requests()
        assert dry_run(before).status_code == 201
        assert test_start(before).status_code == 202
        for request in everything[2:]:
            assert request(before).status_code == 200
        assert send_trace()[:2] == (STORED, 1000)

        pg.stop(mode)
        stopped = time.monotonic()
        body, detected = wait_health(url, 503, stopped + 10)
        print(f"\nPostgreSQL stopped ({mode}): /healthz 503 after {detected - stopped:.3f} s: "
              f"{body}")
        assert "database" in body["failing"]

        during = Requests()
        # Two rounds of every request at once: none may hang, whichever waits for the pool.
        with ThreadPoolExecutor(len(everything) * 2) as pool:
            answers = list(pool.map(lambda request: (request.__name__, request(during)),
                                    everything * 2))
        for name, response in answers:
            assert database_unavailable(response), (name, response.status_code,
                                                    response.text[:500])
        reply, code, seconds = send_trace()
        print(f"trace ingest socket during the outage: {code} {reply} in {seconds:.3f} s")
        assert "send it again later" in reply["message"] and seconds < ANSWER_WITHIN
        # Its close code: test_trace_ingest_socket_closes_when_the_database_is_down.
        print(f"during the PostgreSQL outage: {during.summary()}")
        assert during.slowest() < ANSWER_WITHIN

        # An outage of some seconds: psycopg_pool's delay between attempts to reconnect
        # doubles meanwhile (1, 2, 4, 8 s...), which is what made recovery slow.
        time.sleep(max(0.0, stopped + OUTAGE_SECONDS[mode] - time.monotonic()))
        pg.start()
        back = time.monotonic()
        _, healthy = wait_health(url, 200, back + 10)
        after = Requests()
        recovered = None
        while time.monotonic() < back + RECOVER_WITHIN + 10:
            round_ok = all(request(after).status_code < 400 for request in everything)
            if round_ok:
                recovered = time.monotonic()
                break
            time.sleep(0.05)
        failed_after = sum(1 for _, code, _ in after.answers if not code < 400)
        print(f"PostgreSQL back: /healthz 200 after {healthy - back:.3f} s, every request 2xx "
              f"after {recovered and recovered - back:.3f} s; {after.summary()}")
        assert recovered is not None and recovered - back < RECOVER_WITHIN
        assert send_trace()[:2] == (STORED, 1000)
        stored = pg.run_django(
            "from tracking.models import RequestMetric; from traces.models import Trace;"
            "print(RequestMetric.objects.count(), Trace.objects.filter(status='complete').count())")
        assert [int(n) for n in stored.split()[-2:]] >= [2, 2], stored
        print(f"requests that failed after PostgreSQL was back: {failed_after}")
    finally:
        server.stop()
        if not pg.running:
            pg.start()


def test_trace_ingest_socket_closes_when_the_database_is_down(private_postgres):
    from plumbing.devserver import Server

    server = Server({"DB_DEFAULT": private_postgres.db_default(), "REDIS_URL": ""}).start()
    try:
        private_postgres.stop("fast")
        reply, code, seconds = send_whole_trace(server, 9999, close_within=3)
        assert "send it again later" in reply["message"] and seconds < ANSWER_WITHIN
        assert code == 4011  # 1011 cannot be sent by daphne (autobahn): see CLOSE_SERVER_ERROR
    finally:
        server.stop()
        private_postgres.start()
