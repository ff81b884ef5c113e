"""Benchmark: the server's memory while many websockets open and after they close.

One server process (plumbing.devserver.Server; MONITOR_SERVER picks it) on a SQLite file of its
own. Each round opens N websockets from one address (half trace ingest sockets, /ws/trace/<id>, half
live sockets, /ws/machine/status/, with DASHBOARDS_PUBLIC on), closes them all, waits, and reads the
server's resident memory (VmRSS). The baseline is the same server's memory after the first round: a
server that keeps what the sockets used grows round after round; one that reuses it stays near a
ratio of 1.

    .venv/bin/python bench/websocket_memory.py [--sockets 1000] [--rounds 4]

--sockets is capped by WEBSOCKET_MAX_CONNECTIONS_PER_CLIENT (1000 by default; the server is
started with it raised to the round's size).
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from plumbing.devserver import Server  # noqa: E402 (sys.path set above)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def one_round(server, sockets: int, first_id: int) -> float:
    """Opens `sockets` websockets, checks each is open, closes them; returns seconds taken."""
    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=0)  # aiohttp's default of 100 would queue the rest
    async with aiohttp.ClientSession(connector=connector) as session:
        opened = []
        for number in range(sockets):
            path = (f"/ws/trace/{first_id + number}" if number % 2 == 0
                    else "/ws/machine/status/")
            opened.append(await session.ws_connect(server.ws_url + path, autoping=False))
        await asyncio.sleep(0.5)
        still_open = sum(not socket.closed for socket in opened)
        if still_open != sockets:
            raise SystemExit(f"only {still_open} of {sockets} sockets stayed open")
        await asyncio.gather(*(socket.close() for socket in opened))
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds to wait after closing before reading the memory")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-wsmem-"))
    database = f"sqlite:///{folder / 'bench.sqlite3'}"
    env = {"DATABASE_URL": database, "DEBUG": "False", "SECRET_KEY": "bench-" + "x" * 50,
           "ALLOWED_HOSTS": "127.0.0.1", "DASHBOARDS_PUBLIC": "True",
           "WEBSOCKET_MAX_CONNECTIONS_PER_CLIENT": str(max(1000, args.sockets)),
           "ENV_FILE": ""}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                   env={**os.environ, **env}, check=True)
    server = Server(env).start()
    try:
        pid = server.process.pid
        before = rss_mb(pid)
        print(f"server RSS before any socket: {before:.1f} MB")
        after = []
        for number in range(args.rounds):
            seconds = asyncio.run(one_round(server, args.sockets, 1 + number * args.sockets))
            time.sleep(args.settle)
            after.append(rss_mb(pid))
            print(f"round {number + 1}: {args.sockets} sockets opened and closed in "
                  f"{seconds:.1f} s; RSS after closing {after[-1]:.1f} MB")
        print(f"\nRSS after the last round / after the first (baseline): "
              f"{after[-1]:.1f} / {after[0]:.1f} MB = {after[-1] / after[0]:.3f}")
        print(f"growth per round after the first: "
              f"{(after[-1] - after[0]) / max(1, args.rounds - 1):+.1f} MB")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
