"""A real server process serving this project, for tests and benchmarks (never for production).

    server = Server({"DB_DEFAULT": ..., "REDIS_URL": ...}).start()
    Server(..., server="daphne")   # or MONITOR_SERVER=daphne; default: production's (uvicorn)
    Server(..., workers=2)         # two processes on the port (plumbing.serve.Workers)
    ... requests.get(server.url + "/healthz"), websocket.create_connection(server.ws_url + ...)
    server.stop()
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plumbing import serve

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The server (plumbing.serve's command line, as production runs it) on
    127.0.0.1:<free port>, environment = this process's plus `env_overrides`."""

    def __init__(self, env_overrides=None, port=None, server=None, workers=1, access_log=True):
        self.server = serve.chosen_server(server or (env_overrides or {}).get("MONITOR_SERVER"))
        self.workers = workers
        self.access_log = access_log  # tests read it; production leaves it to the proxy
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix=f"{self.server}-", suffix=".log",
                                               delete=False)
        env = dict(os.environ)
        env.update(ALLOWED_HOSTS="127.0.0.1,localhost", DEBUG="False", PYTHONUNBUFFERED="1")
        env.update(env_overrides or {})
        if "DB_DEFAULT" in (env_overrides or {}):
            env.pop("DATABASE_URL", None)
        self.env = env
        self.process = None

    def start(self, timeout=30):
        argv = [sys.executable, "-m", "plumbing.serve", "--server", self.server,
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        if self.access_log:
            argv.append("--access-log")
        self.process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
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
        raise RuntimeError(f"{self.server} did not become healthy:\n{self.output()[-4000:]}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                # Its worker processes too (they share its session).
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")
