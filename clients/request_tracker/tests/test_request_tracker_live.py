"""Our tracker in a real Django project and a real Flask app, and the legacy tracker's wire format,
all delivering to a running Monitor server; no credential reaches its database."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from request_tracker_stub import Listener

from tracking.models import Project, RequestMetric

pytestmark = pytest.mark.integration

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
SECRETS = ("sessionid", "s3cret", "Bearer", "hunter2")


def wait_for_rows(project, count, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if RequestMetric.objects.filter(project=project).count() >= count:
            break
        time.sleep(0.1)
    return list(RequestMetric.objects.filter(project=project).order_by("received_at"))


def assert_no_secrets(rows):
    for row in rows:
        stored = json.dumps(row.headers) + row.query + row.session_id + row.user_agent
        for secret in SECRETS:
            assert secret not in stored
        assert not {"Cookie", "Authorization"} & set(row.headers)


def test_django_middleware_in_a_real_project_delivers_sync_and_async_views(asgi_server):
    project, token = Project.create_with_token("Django site")
    driver = textwrap.dedent("""
        import asyncio, django
        django.setup()
        from django.test import AsyncClient, Client
        client = Client(raise_request_exception=False)
        assert client.get("/?page=2&token=s3cret", HTTP_COOKIE="sessionid=hunter2",
                          HTTP_AUTHORIZATION="Bearer xyz", HTTP_USER_AGENT="driver/1").status_code == 200
        assert client.get("/broken/").status_code == 500
        assert client.get("/nowhere/").status_code == 404
        async def run():
            response = await AsyncClient().get("/async/")
            assert response.status_code == 200
        asyncio.run(run())
    """)  # exits at once: the atexit flush delivers
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(SRC)]),
           "DJANGO_SETTINGS_MODULE": "tracked_django_site", "RA_PROJECT_ID": str(project.public_id),
           "RA_PROJECT_TOKEN": token, "RA_BACKEND_ENDPOINT": asgi_server.url + "/"}
    result = subprocess.run([sys.executable, "-c", driver], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = wait_for_rows(project, 4)
    by_path = {row.path: row for row in rows}
    assert set(by_path) == {"/", "/broken/", "/nowhere/", "/async/"}
    home = by_path["/"]
    assert (home.method, home.view_name, home.status_code, home.response_size) == (
        "GET", "home", 200, 5)
    assert home.query == "page=2&token=%5Bscrubbed%5D" and home.user_agent == "driver/1"
    assert home.session_id  # a daily visitor hash: no cookie was used for it
    assert by_path["/broken/"].status_code == 500 and by_path["/nowhere/"].view_name == ""
    assert by_path["/async/"].view_name == "slow-async"
    assert by_path["/async/"].duration_ms >= 20
    assert_no_secrets(rows)


def test_flask_extension_in_a_real_app_delivers(asgi_server):
    from flask import Flask, abort

    from monitor_request_tracker.flask import Tracker

    project, token = Project.create_with_token("Flask app")
    app = Flask("tracked_flask_app")
    app.config["RIGID_ANALYTICS"] = {
        "PROJECT_ID": str(project.public_id), "PROJECT_TOKEN": token,
        "DEBUG_DISABLE_ANALYTICS": False, "BACKEND_ENDPOINT": asgi_server.url + "/tracking/",
        "FLUSH_INTERVAL": 0.1,
    }

    @app.get("/")
    def index():
        return "hi"

    @app.get("/items/<int:item_id>")
    def item(item_id):
        if item_id == 0:
            abort(404)
        return {"id": item_id}

    @app.get("/crash")
    def crash():
        raise RuntimeError("boom")

    tracker = Tracker()
    tracker.init_app(app)
    client = app.test_client()
    client.get("/", headers={"Cookie": "sessionid=hunter2", "Authorization": "Bearer s3cret"})
    client.get("/items/7?x=1")
    client.get("/items/0")
    client.get("/crash")
    tracker.sender.flush(timeout=10)
    rows = wait_for_rows(project, 4)
    got = sorted((r.path, r.view_name, r.status_code, r.method) for r in rows)
    assert got == [("/", "index", 200, "GET"), ("/crash", "crash", 500, "GET"),
                   ("/items/0", "item", 404, "GET"), ("/items/7", "item", 200, "GET")]
    assert next(r for r in rows if r.path == "/items/7").query == "x=1"
    assert_no_secrets(rows)


def test_disabled_in_debug_when_the_flag_is_missing(asgi_server):
    from flask import Flask

    from monitor_request_tracker.flask import Tracker

    app = Flask("debug_app")
    app.debug = True
    app.config["RIGID_ANALYTICS"] = {"PROJECT_ID": "x", "PROJECT_TOKEN": "y"}
    assert Tracker(app).sender is None


def test_seed_client_wire_format_delivers_to_a_running_server(asgi_server):
    """Exactly what rigidanalytics-tracker 2.0.5 sends: urljoin(BACKEND_ENDPOINT, PROJECT_ID)."""
    from urllib.parse import urljoin

    project, token = Project.create_with_token("Seed app")
    body = {"project_token": token, "event_type": "page_view", "ra_tracker_version": "v2.0.5",
            "event_data": {"view_name": "home",
                           "header_data": {"HTTP_HOST": "app", "HTTP_USER_AGENT": "seed",
                                           "HTTP_COOKIE": "sessionid=hunter2",
                                           "CONTENT_TYPE": "", "CONTENT_LENGTH": ""},
                           "full_url": "http://app/?q=1", "ra_session_id": uuid.uuid4().hex,
                           "time_request_received_ns": time.time_ns(),
                           "processing_time_ns": 2_000_000,
                           "response_data": {"status_code": 200, "cookies": {}}}}
    url = urljoin(asgi_server.url + "/tracking/", str(project.public_id))
    response = requests.post(url, json=body, allow_redirects=False, timeout=10)
    assert response.status_code == 201, response.text
    rows = wait_for_rows(project, 1)
    assert rows[0].view_name == "home" and rows[0].query == "q=1"
    assert_no_secrets(rows)


class AnswerLosingProxy(Listener):
    """TCP proxy to the server that forwards the first request, waits for the server's answer
    (so the batch is stored) and then cuts the connection instead of passing the answer on, as
    a server killed or a network cut after the commit would; later connections pass through."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.connections = 0
        super().__init__()

    def on_connection(self, client):
        self.connections += 1
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        lose = self.connections == 1
        threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
        threading.Thread(target=self._pipe, args=(upstream, client, lose), daemon=True).start()

    @staticmethod
    def _pipe(source, target, lose_answer):
        try:
            while data := source.recv(65536):
                if lose_answer:
                    break  # the server answered: it has stored the batch; the client never hears
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def test_a_batch_whose_answer_was_lost_is_stored_once_by_the_server(asgi_server):
    """The tracker retries with the batch's Idempotency-Key; the server answers the first answer
    again (Idempotent-Replayed) instead of storing the batch twice."""
    from monitor_request_tracker.config import TrackerConfig, ingest_url
    from monitor_request_tracker.sender import Sender, request_item

    project, token = Project.create_with_token("Lost answers")
    proxy = AnswerLosingProxy(int(asgi_server.url.rsplit(":", 1)[1]))
    sender = Sender(TrackerConfig(str(project.public_id), token,
                                  ingest_url(f"http://127.0.0.1:{proxy.port}/"), True,
                                  flush_interval=0.05, timeout=10, backoff_max=0.2))
    try:
        for n in range(7):
            sender.record(request_item(f"/lost/{n}", view="lost", response_size=1,
                                       duration_ns=2_000_000,
                                       meta={"HTTP_USER_AGENT": "agent",
                                             "REMOTE_ADDR": "10.0.0.1"}))
        deadline = time.monotonic() + 15
        while sender.sent < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sender.sent == 7 and sender.retries == 1 and proxy.connections == 2
        assert "RemoteDisconnected" in sender.last_error or "Connection" in sender.last_error
    finally:
        sender.close()
        proxy.stop()
    time.sleep(0.3)
    assert RequestMetric.objects.filter(project=project).count() == 7
