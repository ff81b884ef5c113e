"""Local stand-ins for the backend, for the tracker's fault cases.

StubBackend: answers like the ingest endpoint; it can be slow, answer 429/503 (a few times or
always), or be stopped and started again on the same port. Like the server, it stores a batch
once per Idempotency-Key. BlackHole: accepts connections and never answers.
"""

import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubBackend:
    def __init__(self, port=0):
        self.batches = []
        self.delay = 0.0
        self.delays = []  # delays before answering (and storing) the first POSTs; then `delay`
        self.connections = set()
        self.statuses = []  # answers to give first, e.g. [429, 429]; then `status`
        self.status = 200
        self.retry_after = "0.2"
        self.attempts = []  # every POST: (monotonic time, Idempotency-Key, answered status)
        self.keys = set()
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with stub.lock:
                    stub.connections.add(self.connection)

            def finish(self):
                with stub.lock:
                    stub.connections.discard(self.connection)
                super().finish()

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers.get("Idempotency-Key")
                with stub.lock:
                    delay = stub.delays.pop(0) if stub.delays else stub.delay
                    status = stub.statuses.pop(0) if stub.statuses else stub.status
                    stub.attempts.append((time.monotonic(), key, status))
                    replayed = status == 200 and key is not None and key in stub.keys
                    if status == 200 and not replayed:
                        payload = json.loads(gzip.decompress(body))
                        payload["_authorization"] = self.headers.get("Authorization")
                        payload["_key"] = key
                        stub.batches.append(payload)
                        if key is not None:
                            stub.keys.add(key)
                # Stored first, answered late: past the client's timeout, the answer is lost.
                time.sleep(delay)
                try:
                    self.send_response(status)
                    if replayed:
                        self.send_header("Idempotent-Replayed", "true")
                    if status in (429, 503) and stub.retry_after is not None:
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
        """Down for good: no listener, and kept-alive connections are cut too."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def wait_for(self, count, timeout=10):
        """Whether `count` events arrived within `timeout` (received: the client may not have
        read the answer yet, so wait for its own counters separately)."""
        return wait_until(lambda: len(self.events) >= count, timeout)


def wait_until(condition, timeout=10):
    """condition()'s first truthy result within `timeout` seconds, else its last (falsy) one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.01)
    return condition()


class Listener:
    """A TCP port on 127.0.0.1 (a free one by default) whose connections a thread accepts and
    hands to on_connection, until stop()."""

    def __init__(self, port=0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.on_connection(connection)

    def on_connection(self, connection):
        raise NotImplementedError

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(2)


class BlackHole(Listener):
    """A TCP port that accepts connections and never answers (nor reads): the slowest failure
    a client can meet, bounded only by its own timeout."""

    def __init__(self, port=0):
        self.accepted = []
        super().__init__(port)

    def on_connection(self, connection):
        self.accepted.append(connection)  # held open, never read, never answered

    def stop(self):
        super().stop()
        for connection in self.accepted:
            connection.close()
