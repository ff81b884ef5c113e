"""A real daphne process serving this project, for tests and benchmarks (never for production).

    server = Server({"DB_DEFAULT": ..., "REDIS_URL": ...}).start()
    ... requests.get(server.url + "/healthz"), websocket.create_connection(server.ws_url + ...)
    server.stop()
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# As the Procfile and the Dockerfile: websocket messages up to 16 MiB reach the application.
DAPHNE_OPTIONS = ["--websocket-max-message-size", "16777216", "--websocket-max-frame-size",
                  "16777216"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """daphne on 127.0.0.1:<free port>, environment = this process's plus `env_overrides`."""

    def __init__(self, env_overrides=None, port=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="daphne-", suffix=".log", delete=False)
        env = dict(os.environ)
        env.update(ALLOWED_HOSTS="127.0.0.1,localhost", DEBUG="False", PYTHONUNBUFFERED="1")
        env.update(env_overrides or {})
        if "DB_DEFAULT" in (env_overrides or {}):
            env.pop("DATABASE_URL", None)
        self.env = env
        self.process = None

    def start(self, timeout=30):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
             *DAPHNE_OPTIONS, "trace_project.asgi:application"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=30):
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"daphne did not become healthy:\n{self.output()[-4000:]}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")
