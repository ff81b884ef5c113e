"""Starts the web server: `python -m plumbing.serve [-b HOST] [-p PORT] [--proxy-headers]`.

The one place that knows the command line of each ASGI server this project runs under (the
Procfile, the Dockerfile, plumbing.devserver for tests and benchmarks):

- MONITOR_SERVER: `uvicorn` (the default: measured cheaper per request, bench/http_floor.py)
  with uvloop, httptools and websockets (its Sans-I/O protocol; the legacy one is deprecated),
  or `daphne`;
- WEB_CONCURRENCY: server processes on the port (one per core in production: `auto`). 1 by
  default. Above 1, this process supervises them (`Workers`): each has a listening socket of its
  own on the port (SO_REUSEPORT), so the kernel spreads new connections evenly among them
  whenever they arrive; one socket shared by all would give most connections made at a quiet
  time (live pages' and traces' websockets) to one process.

`--print` prints the command line instead of running it.
"""

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

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


def command(server: str, host: str, port: int, *, proxy_headers=False, fd: int | None = None,
            application: str = APPLICATION, access_log=False) -> list[str]:
    """One server process's argv, on host:port or on the listening socket `fd` (Workers)."""
    if server == "uvicorn":
        if fd is None:
            argv = [sys.executable, "-m", "uvicorn", application, "--host", host,
                    "--port", str(port)]
        else:  # uvicorn itself would serve the socket's TCP connections as Unix ones
            argv = [sys.executable, "-m", "plumbing.library_internals.uvicorn_fd", application,
                    "--fd", str(fd)]
        # One process: uvicorn would otherwise read WEB_CONCURRENCY itself (and start that
        # many processes of its own in each of ours, or fail on "auto").
        argv += ["--workers", "1", "--loop", "uvloop",
                 "--http", "plumbing.library_internals.uvicorn_protocol:HttpToolsProtocol",
                 "--ws", "websockets-sansio", "--ws-max-size", WEBSOCKET_MAX_BYTES,
                 # As daphne: no per-message compression (CPU per frame for every socket).
                 "--ws-per-message-deflate", "False",
                 # Django has no lifespan events.
                 "--lifespan", "off"]
        if not access_log:  # the proxy logs requests
            argv.append("--no-access-log")
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


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets listening on host:port with SO_REUSEPORT (port 0: the first one's).

    Only Linux spreads connections among such sockets; elsewhere (macOS gives them all to the
    socket bound last) the processes share one socket, as uvicorn's --workers does."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # "::" takes IPv4 too, as uvicorn's and daphne's own sockets do where the system allows.
    dualstack = family == socket.AF_INET6 and socket.has_dualstack_ipv6()
    spread = sys.platform.startswith("linux")
    sockets = []
    for _ in range(count if spread else 1):
        sock = socket.create_server((host, port), family=family, backlog=2048, reuse_port=spread,
                                    dualstack_ipv6=dualstack)
        sock.set_inheritable(True)
        port = sock.getsockname()[1]
        sockets.append(sock)
    return sockets if spread else sockets * count


class Workers:
    """Server processes, each accepting on a socket of its own that this process binds and keeps.

    The kernel picks a socket for each new connection by a hash of its addresses, so the split
    is even whatever the timing. This process keeps every socket open: while a process that died
    is replaced, the connections that come to its socket wait in its queue instead of being
    refused. A process that exits with an error soon after its start (an import error, a wrong
    setting) is not replaced: all stop, since every new one would fail the same way. SIGTERM
    and SIGINT (docker stop, Ctrl-C) are passed on; this process ends when all of them have,
    with the highest exit status.
    """

    # An error exit within this many seconds of the start is a failed start.
    STARTUP_SECONDS = 10

    def __init__(self, server: str, host: str, port: int, workers: int, **options):
        self.server, self.host, self.options = server, host, options
        self.sockets = listening_sockets(host, port, workers)
        self.port = self.sockets[0].getsockname()[1]
        self.children: list[subprocess.Popen] = []
        self.started: list[float] = []
        self.stopping = False

    def spawn(self, index: int) -> None:
        fd = self.sockets[index].fileno()
        child = subprocess.Popen(command(self.server, self.host, self.port, fd=fd,
                                         **self.options), pass_fds=[fd])
        if index < len(self.children):
            self.children[index], self.started[index] = child, time.monotonic()
        else:
            self.children.append(child)
            self.started.append(time.monotonic())

    def stop(self, signum=signal.SIGTERM, frame=None):
        self.stopping = True
        for child in self.children:
            # Not Popen.send_signal: its poll() would reap the child behind run()'s os.wait().
            if child.returncode is None:
                os.kill(child.pid, signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        for index in range(len(self.sockets)):
            self.spawn(index)
        if self.stopping:  # a signal came while they were starting
            self.stop()
        status = 0
        while any(child.returncode is None for child in self.children):
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:  # none left (cannot happen while one is unreaped)
                break
            for index, child in enumerate(self.children):
                if child.pid != pid:
                    continue
                child.returncode = os.waitstatus_to_exitcode(wait_status)
                code = abs(child.returncode)  # a signal's number when it was killed by one
                if self.stopping:
                    status = max(status, code if child.returncode > 0 else 0)
                elif (child.returncode > 0
                      and time.monotonic() - self.started[index] < self.STARTUP_SECONDS):
                    print(f"serve: server process {pid} failed to start (exit status "
                          f"{child.returncode}); stopping", file=sys.stderr, flush=True)
                    status = max(code, 1)
                    self.stop()
                else:
                    print(f"serve: server process {pid} ended (exit status {child.returncode});"
                          f" starting another on its socket", file=sys.stderr, flush=True)
                    self.spawn(index)
        return status


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
    options = {"proxy_headers": args.proxy_headers, "access_log": args.access_log}
    if args.print:
        if workers > 1:
            print(f"# {workers} x, each on a listening socket of its own on {args.host}:"
                  f"{args.port} (SO_REUSEPORT), bound and passed on by plumbing.serve:")
        print(shlex.join(command(server, args.host, args.port, fd=3 if workers > 1 else None,
                                 **options)))
        return 0
    if workers > 1:
        try:
            supervisor = Workers(server, args.host, args.port, workers, **options)
        except OSError as error:  # as uvicorn words it for one process
            raise SystemExit(f"serve: cannot listen on {args.host}:{args.port}: {error}") from None
        return supervisor.run()
    argv = command(server, args.host, args.port, **options)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main())
