"""Starts the web server: `python -m plumbing.serve [-b HOST] [-p PORT] [--proxy-headers]`.

The one place that knows the command line of each ASGI server this project runs under (the
Procfile, the Dockerfile, plumbing.devserver for tests and benchmarks):

- MONITOR_SERVER: `uvicorn` (the default: measured cheaper per request, bench/http_floor.py)
  with uvloop, httptools and websockets (its Sans-I/O protocol; the legacy one is deprecated),
  or `daphne`;
- WEB_CONCURRENCY: server processes sharing the listening socket (one per core in production:
  `auto`; the kernel spreads the connections among them). 1 by default.

`--print` prints the command line instead of running it.
"""

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys

SERVERS = ("uvicorn", "daphne")
DEFAULT_SERVER = "uvicorn"
APPLICATION = "trace_project.asgi:application"
# Websocket messages up to 16 MiB reach the application, which answers oversize trace frames
# (TRACE_MAX_FRAME_BYTES) with an Error reply instead of the server's bare 1009 (docs/limits.md).
WEBSOCKET_MAX_BYTES = "16777216"


def chosen_server(name: str | None = None) -> str:
    name = (name or os.environ.get("MONITOR_SERVER") or DEFAULT_SERVER).strip().lower()
    if name not in SERVERS:
        raise SystemExit(f"MONITOR_SERVER must be one of {', '.join(SERVERS)}, not {name!r}")
    return name


def web_concurrency() -> int:
    raw = os.environ.get("WEB_CONCURRENCY", "1").strip().lower()
    if raw == "auto":
        return len(os.sched_getaffinity(0))
    try:
        workers = int(raw)
    except ValueError:
        raise SystemExit(f"WEB_CONCURRENCY must be a whole number or auto, not {raw!r}") from None
    if workers < 1:
        raise SystemExit(f"WEB_CONCURRENCY must be at least 1, not {workers}")
    return workers


def command(server: str, host: str, port: int, *, workers: int = 1, proxy_headers=False,
            fd: int | None = None, application: str = APPLICATION,
            access_log=False) -> list[str]:
    """The server's argv. uvicorn runs `workers` processes itself; daphne runs one per `fd`."""
    if server == "uvicorn":
        argv = [sys.executable, "-m", "uvicorn", application, "--host", host, "--port", str(port),
                "--loop", "uvloop",
                "--http", "plumbing.library_internals.uvicorn_protocol:HttpToolsProtocol",
                "--ws", "websockets-sansio", "--ws-max-size", WEBSOCKET_MAX_BYTES,
                # As daphne: no per-message compression (CPU per frame for every socket).
                "--ws-per-message-deflate", "False",
                # Django has no lifespan events.
                "--lifespan", "off"]
        if not access_log:  # the proxy logs requests
            argv.append("--no-access-log")
        if workers > 1:
            argv += ["--workers", str(workers)]
        if proxy_headers:
            # The proxy's X-Forwarded-For/-Proto from any address, as daphne's --proxy-headers:
            # only the proxy reaches the web processes (docker-compose exposes no port).
            argv += ["--proxy-headers", "--forwarded-allow-ips",
                     os.environ.get("FORWARDED_ALLOW_IPS", "*")]
        return argv
    argv = [sys.executable, "-m", "daphne"]
    argv += ["--fd", str(fd)] if fd is not None else ["-b", host, "-p", str(port)]
    argv += ["--websocket-max-message-size", WEBSOCKET_MAX_BYTES,
             "--websocket-max-frame-size", WEBSOCKET_MAX_BYTES]
    if proxy_headers:
        argv.append("--proxy-headers")
    return argv + [application]


def run_daphnes(host: str, port: int, workers: int, proxy_headers: bool) -> int:
    """`workers` daphne processes accepting on one listening socket, bound here; SIGTERM and
    SIGINT are passed on to them (docker stop, Ctrl-C), and this process ends when they have."""
    listener = socket.create_server((host, port), backlog=2048)
    listener.set_inheritable(True)
    fd = listener.fileno()
    children = [subprocess.Popen(command("daphne", host, port, proxy_headers=proxy_headers,
                                         fd=fd), pass_fds=[fd]) for _ in range(workers)]

    def pass_on(signum, frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    return max(child.wait() for child in children)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-b", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=8000)
    parser.add_argument("--server", choices=SERVERS, help="default: MONITOR_SERVER, else uvicorn")
    parser.add_argument("--workers", type=int, help="default: WEB_CONCURRENCY (a number, or auto: "
                                                    "one per core), else 1")
    parser.add_argument("--proxy-headers", action="store_true",
                        help="trust X-Forwarded-For/-Proto (behind the proxy)")
    parser.add_argument("--access-log", action="store_true",
                        help="uvicorn: log each request (daphne always does)")
    parser.add_argument("--print", action="store_true", help="print the command, run nothing")
    args = parser.parse_args(argv)
    server = chosen_server(args.server)
    workers = args.workers or web_concurrency()
    if server == "daphne" and workers > 1:
        if args.print:
            print(f"# {workers} x, sharing one listening socket on {args.host}:{args.port}:")
            print(shlex.join(command(server, args.host, args.port, fd=3,
                                     proxy_headers=args.proxy_headers)))
            return 0
        return run_daphnes(args.host, args.port, workers, args.proxy_headers)
    argv = command(server, args.host, args.port, workers=workers,
                   proxy_headers=args.proxy_headers, access_log=args.access_log)
    if args.print:
        print(shlex.join(argv))
        return 0
    os.execv(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main())
