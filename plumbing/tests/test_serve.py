"""plumbing/serve.py: the production command lines, and several processes on one port."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
import websocket

from plumbing import serve


@pytest.mark.unit
def test_uvicorn_runs_with_the_header_deadline_and_the_websocket_cap():
    argv = serve.command("uvicorn", "0.0.0.0", 8000, proxy_headers=True)
    assert argv[1:4] == ["-m", "uvicorn", "trace_project.asgi:application"]
    pairs = dict(zip(argv[4::1], argv[5::1]))
    assert pairs["--host"] == "0.0.0.0" and pairs["--port"] == "8000"
    assert pairs["--http"] == "plumbing.library_internals.uvicorn_protocol:HttpToolsProtocol"
    assert pairs["--loop"] == "uvloop" and pairs["--ws"] == "websockets-sansio"
    assert pairs["--ws-max-size"] == serve.WEBSOCKET_MAX_BYTES and pairs["--workers"] == "1"
    assert "--proxy-headers" in argv and "--no-access-log" in argv
    # One of several processes: the socket it is given, not an address to bind.
    argv = serve.command("uvicorn", "0.0.0.0", 8000, fd=5)
    assert argv[3:6] == ["trace_project.asgi:application", "--fd", "5"]
    assert "--host" not in argv and "--port" not in argv and "--ws-max-size" in argv


@pytest.mark.unit
def test_a_process_given_a_tcp_socket_serves_it_as_tcp(monkeypatch):
    # uvicorn's own --fd makes the socket object AF_UNIX, and uvloop then serves every TCP
    # connection as a pipe: no TCP_NODELAY, 40 ms a keep-alive request (bench/scaling.py).
    from uvicorn import server

    from plumbing.library_internals import uvicorn_fd

    assert serve.command("uvicorn", "0.0.0.0", 8000, fd=5)[1:3] == [
        "-m", "plumbing.library_internals.uvicorn_fd"]
    monkeypatch.setattr(server, "socket", server.socket)  # put back after the test
    uvicorn_fd.install()  # what `python -m plumbing.library_internals.uvicorn_fd` does first
    with socket.create_server(("127.0.0.1", 0)) as listener:
        seen = server.socket.fromfd(listener.fileno(), server.socket.AF_UNIX,
                                    server.socket.SOCK_STREAM)
        with seen:
            assert seen.family == socket.AF_INET and seen.type == socket.SOCK_STREAM
            assert seen.getsockname() == listener.getsockname()
    assert socket.fromfd is not uvicorn_fd.fromfd  # only uvicorn.server's view changes


@pytest.mark.unit
def test_web_concurrency(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "auto")
    assert serve.web_concurrency() >= 1
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert serve.web_concurrency() == 3
    for wrong in ("0", "two"):
        monkeypatch.setenv("WEB_CONCURRENCY", wrong)
        with pytest.raises(SystemExit, match="WEB_CONCURRENCY"):
            serve.web_concurrency()
    monkeypatch.setenv("MONITOR_SERVER", "gunicorn")
    with pytest.raises(SystemExit, match="MONITOR_SERVER"):
        serve.chosen_server()


def children(pid):
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def established_per_process(pids, port) -> Counter:
    """How many established TCP connections to `port` each of `pids` holds (from /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":  # ESTABLISHED
            inodes.add(fields[9])
    held = Counter()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held[pid] += 1
    return held


@pytest.mark.integration
@pytest.mark.parametrize("server_name", ["uvicorn", "daphne"])
def test_two_processes_serve_one_port_and_share_connections_made_at_a_quiet_time(
        server_factory, server_name):
    from conftest import test_database_env
    from plumbing.devserver import Server

    # WEB_CONCURRENCY as the Docker image sets it: read by plumbing.serve, not by each process.
    server = Server({"DB_DEFAULT": test_database_env(), "WEB_CONCURRENCY": "auto"},
                    server=server_name, workers=2).start()
    sockets = []
    try:
        workers = children(server.process.pid)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in workers]
        # serve.py starts each process on a listening socket of its own, which it bound.
        assert len(workers) == 2 and all(b"--fd" in command for command in commands)
        # Websockets opened one by one at an idle server, as live pages' are: two uvicorn
        # processes accepting from one shared socket gave 32-36 of 40 to the same process (4
        # runs of 4); the kernel's hash over two sockets gives each half or so. (Websockets:
        # HTTP keep-alive connections idle for 5 s would be closed before they are counted.)
        for number in range(40):
            sockets.append(websocket.create_connection(
                f"{server.ws_url}/ws/trace/{9000 + number}", timeout=10))
            time.sleep(0.1)
        held = established_per_process(workers, server.port)
        assert sum(held.values()) == 40, held
        assert max(held.values()) <= 31, held  # 32 or more: 1 run in 5,000 by chance
    finally:
        for ws in sockets:
            ws.close()
        server.stop()


@pytest.mark.integration
def test_a_server_process_that_dies_is_replaced_and_no_connection_is_refused(server_factory):
    from conftest import test_database_env
    from plumbing.devserver import Server

    server = Server({"DB_DEFAULT": test_database_env()}, workers=2).start()
    try:
        killed, kept = children(server.process.pid)
        os.kill(killed, signal.SIGKILL)
        # New connections meant for the dead process's socket wait for its replacement.
        for _ in range(12):
            with requests.Session() as session:
                assert session.get(server.url + "/healthz", timeout=60).status_code == 200
        workers = children(server.process.pid)
        assert kept in workers and killed not in workers and len(workers) == 2
        assert "ended (exit status -9); starting another on its socket" in server.output()
    finally:
        server.stop()
    # Stopped: the supervisor passed SIGTERM on and ended after both processes.
    assert server.process.returncode == 0


@pytest.mark.integration
def test_server_processes_that_cannot_start_stop_the_whole_server():
    from plumbing.devserver import free_port

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="no_such_settings", DEBUG="True")
    result = subprocess.run(
        [sys.executable, "-m", "plumbing.serve", "--port", str(free_port()), "--workers", "2"],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 1
    assert "No module named 'no_such_settings'" in result.stderr
    assert "failed to start (exit status 1); stopping" in result.stderr


@pytest.mark.unit
def test_a_port_taken_is_said_plainly():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit, match=f"cannot listen on 127.0.0.1:{port}: .*in use"):
            serve.main(["--port", str(port), "--workers", "2"])


@pytest.mark.unit
def test_elsewhere_than_linux_the_processes_share_one_socket(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    sockets = serve.listening_sockets("127.0.0.1", 0, 3)
    try:
        assert len(sockets) == 3 and len({sock.fileno() for sock in sockets}) == 1
        assert sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
    finally:
        sockets[0].close()
    monkeypatch.setattr(sys, "platform", "linux")
    sockets = serve.listening_sockets("127.0.0.1", 0, 2)
    try:
        assert len({sock.fileno() for sock in sockets}) == 2
        assert len({sock.getsockname() for sock in sockets}) == 1  # one port
        assert all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
