import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command

from notifications.models import Delivery


class Receiver:
    """A local HTTP server standing in for Discord, Slack or a webhook receiver.

    `script` is a list of (status, delay_seconds) answers used in order; then 204s.
    """

    def __init__(self):
        self.requests = []
        self.script = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "raw": body, "json": json.loads(body or b"null")})
                status, delay, headers = 204, 0, {}
                if receiver.script:
                    status, delay, *rest = receiver.script.pop(0)
                    headers = rest[0] if rest else {}
                time.sleep(delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no" if status >= 300 else b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def fast_retries(settings):
    settings.NOTIFY_RETRY_BASE_SECONDS = 0.05
    settings.NOTIFY_RETRY_MAX_SECONDS = 0.2
    settings.NOTIFY_TIMEOUT_SECONDS = 1.0
    settings.NOTIFY_MAX_ATTEMPTS = 4


@pytest.fixture
def run_worker():
    """Run the real django-tasks worker until every delivery is settled (or the deadline)."""

    def run(deadline_seconds=20):
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            call_command("db_worker", "--batch", "--no-startup-delay", "--interval", "0")
            if not Delivery.objects.filter(
                state__in=[Delivery.State.PENDING, Delivery.State.SENDING]
            ).exists():
                return
            time.sleep(0.05)
        raise AssertionError("deliveries still pending after the deadline")

    return run
