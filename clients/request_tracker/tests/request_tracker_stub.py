"""A local stand-in for the backend, for the sender's fault cases: it can be slow, answer 429,
or be stopped and started again on the same port."""

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubBackend:
    def __init__(self, port=0):
        self.batches = []
        self.delay = 0.0
        self.statuses = []  # answers to give first, e.g. [429, 429]; then 200
        self.retry_after = "0.2"
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(stub.delay)
                with stub.lock:
                    status = stub.statuses.pop(0) if stub.statuses else 200
                    if status == 200:
                        payload = json.loads(gzip.decompress(body))
                        payload["_authorization"] = self.headers.get("Authorization")
                        stub.batches.append(payload)
                try:
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", stub.retry_after)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the client timed out and went away: that is the point of the test

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def events(self):
        with self.lock:
            return [event for batch in self.batches for event in batch["events"]]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events) >= count:
                return True
            time.sleep(0.02)
        return False
