"""What several benchmark scripts share: command-line options, the environment of a server run
as production runs it, and clients on threads."""

import argparse
import os
import threading


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
