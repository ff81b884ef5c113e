"""Private Redis and PostgreSQL servers that a test may stop, kill and start again.

Tests of outages must never touch the shared services (other tests, other people use them), so
they bring their own: a redis-server and a PostgreSQL cluster on free ports of 127.0.0.1, in
temporary directories, gone at the end.

Fixtures (trace_project/tests/conftest.py):

    def test_something(private_redis, private_postgres):
        private_redis.url                 # redis://127.0.0.1:<port>/0, running
        private_redis.stop()              # SIGKILL (or stop(graceful=True): SIGTERM)
        private_redis.start()             # the same port again, empty (no persistence)

        private_postgres.url              # postgres://postgres@127.0.0.1:<port>/monitor, migrated
        private_postgres.db_default()     # the same as a DB_DEFAULT JSON for plumbing.devserver
        private_postgres.stop("fast")     # or "immediate" (a crash: no shutdown checkpoint)
        private_postgres.start()
        private_postgres.run_django("print(...)")   # code run by `manage.py shell` on it

`private_postgres` is one cluster for the session (initdb + migrate: about 3 s); each test that
asks for it gets it running. `private_redis` is one server per test (a few milliseconds).
Without the fixtures: PrivateRedis().start() ... .close(); PrivatePostgres().create() ... .close().

Neither needs root, except that initdb and pg_ctl refuse to run as root: as root they run as the
user `postgres` (runuser), which then owns the cluster's directory.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plumbing.devserver import ROOT, free_port


def _wait_for_port(port: int, timeout: float, process=None) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process on port {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class PrivateRedis:
    """redis-server on 127.0.0.1:<free port>, no persistence: a restart starts empty, as a
    Redis used only for pub/sub and a cache does."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.log = tempfile.NamedTemporaryFile(prefix="private-redis-", suffix=".log",
                                               delete=False)

    def start(self, timeout: float = 10) -> "PrivateRedis":
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", tempfile.gettempdir()],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        _wait_for_port(self.port, timeout, self.process)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, graceful: bool = False) -> None:
        """SIGKILL by default (connections drop at once, as when the host dies); SIGTERM with
        graceful=True (Redis closes its clients itself)."""
        if self.running:
            self.process.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
            self.process.wait(10)

    def close(self) -> None:
        self.stop()
        Path(self.log.name).unlink(missing_ok=True)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if not path:
        raise RuntimeError(f"PostgreSQL's {name} not found (apt-get install postgresql)")
    return path


class PrivatePostgres:
    """A PostgreSQL cluster of its own on 127.0.0.1:<free port>, trust authentication, with a
    database `monitor` migrated by this project's `manage.py migrate`."""

    def __init__(self, port: int | None = None, name: str = "monitor"):
        self.port = port or free_port()
        self.name = name
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/{name}"
        self.dir = Path(tempfile.mkdtemp(prefix="private-pg-"))
        self.data = self.dir / "data"
        self.timings = {}

    def _as_owner(self, args: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return args

    def _run(self, args, **kwargs):
        return subprocess.run(self._as_owner(args), check=True, capture_output=True, text=True,
                              **kwargs)

    def create(self) -> "PrivatePostgres":
        """initdb, start, create the database and migrate it (the timings are kept)."""
        started = time.monotonic()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run([_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                   "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"])
        self.timings["initdb"] = time.monotonic() - started
        self.start()
        self._run([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                   "postgres", self.name])
        started = time.monotonic()
        self.manage("migrate", "--no-input", "-v", "0")
        self.timings["migrate"] = time.monotonic() - started
        return self

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def start(self, timeout: int = 30) -> None:
        started = time.monotonic()
        # fsync off: a test cluster, thrown away; durability is not what is tested here.
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off -c max_connections=100")
        self._run([_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                   str(self.dir / "server.log"), "-w", "-t", str(timeout), "start"])
        _wait_for_port(self.port, timeout)
        self.timings["start"] = time.monotonic() - started

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop -m fast (sessions ended, clean shutdown) or immediate (a crash)."""
        if self.running:
            self._run([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def env(self) -> dict:
        """Environment for a process (manage.py, a server) to use this database."""
        env = {k: v for k, v in os.environ.items() if k not in ("DB_DEFAULT", "DATABASE_URL")}
        env["DATABASE_URL"] = self.url
        return env

    def db_default(self) -> str:
        """This database as a DB_DEFAULT JSON entry (what plumbing.devserver.Server and
        server_factory pass): settings.py adds the connect timeout and the pool as in production."""
        return json.dumps({"ENGINE": "django.db.backends.postgresql", "NAME": self.name,
                           "USER": "postgres", "HOST": "127.0.0.1", "PORT": str(self.port)})

    def manage(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(),
                                capture_output=True, text=True, timeout=300)
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def run_django(self, code: str) -> str:
        """Run Python code with Django set up on this database; returns what it printed."""
        return self.manage("shell", "-v", "0", "-c", code)

    def close(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
