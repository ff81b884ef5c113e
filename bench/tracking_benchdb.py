"""A PostgreSQL database of its own for one benchmark run: created, migrated, dropped after."""

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@contextmanager
def bench_database(server_url="postgres://postgres@127.0.0.1:5432", prefix="bench_tracking"):
    import psycopg

    name = f"{prefix}_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = f"{server_url}/{name}"
    try:
        env = {**os.environ, "DATABASE_URL": url, "DEBUG": "True"}
        env.pop("DB_DEFAULT", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env,
                       check=True)
        yield url
    finally:
        with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def manage(url, *args) -> str:
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "True"}
    env.pop("DB_DEFAULT", None)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout
