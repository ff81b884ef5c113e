"""What several benchmark scripts share: command-line options, the environment of a server run
as production runs it, a database of their own for in-process runs, and clients on threads."""

import argparse
import os
import subprocess
import tempfile
import threading
from contextlib import contextmanager


def options(doc: str, **defaults):
    """The parsed command line: a --name option per keyword, of its default's type (the first
    line of `doc`, the script's docstring, describes the script)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    for name, default in defaults.items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    return parser.parse_args()


def server_env(database_url: str, **extra: str) -> dict:
    """A server's environment as in production (DEBUG off, no .env, machines need a token) over
    `database_url` and Redis db BENCH_REDIS_DB (13); `extra` adds or overrides variables."""
    redis_db = os.environ.get("BENCH_REDIS_DB", "13")
    return {"DATABASE_URL": database_url, "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
            "SECRET_KEY": "bench-only-" + "x" * 40, "ENV_FILE": "", "DEBUG": "False",
            "TM_ALLOW_ANONYMOUS_MACHINES": "False", "STATIC_MANIFEST": "False", **extra}


def on_threads(client, count: int) -> None:
    """client(0) ... client(count - 1), each on a thread of its own; returns when all are done."""
    threads = [threading.Thread(target=client, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@contextmanager
def own_database(name: str, sqlite: bool = False):
    """For a benchmark that runs Django in its own process: DATABASE_URL set to a PostgreSQL
    database `name` created on BENCH_PG (default postgres://postgres@127.0.0.1:5432) and dropped
    after, or with `sqlite` to a fresh SQLite file; the settings' environment set (no Redis,
    no .env). Django is set up by the caller, inside."""
    pg = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")

    def psql(sql):
        subprocess.run(["psql", pg + "/postgres", "-qc", sql], check=True, capture_output=True)

    if sqlite:
        os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/{name}.sqlite3"
    else:
        psql(f"CREATE DATABASE {name}")
        os.environ["DATABASE_URL"] = f"{pg}/{name}"
    os.environ.update(SECRET_KEY="bench-" + "x" * 50, LOG_LEVEL="ERROR", REDIS_URL="",
                      DJANGO_SETTINGS_MODULE="trace_project.settings", ENV_FILE="")
    try:
        yield
    finally:
        if not sqlite:
            from django.db import connections

            connections.close_all()
            psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
