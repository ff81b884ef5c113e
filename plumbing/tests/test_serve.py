"""plumbing/serve.py: the production command lines, and several processes on one port."""

from pathlib import Path

import pytest
import requests

from plumbing import serve


@pytest.mark.unit
def test_uvicorn_runs_with_the_header_deadline_and_the_websocket_cap():
    argv = serve.command("uvicorn", "0.0.0.0", 8000, workers=4, proxy_headers=True)
    assert argv[1:4] == ["-m", "uvicorn", "trace_project.asgi:application"]
    pairs = dict(zip(argv[4::1], argv[5::1]))
    assert pairs["--http"] == "plumbing.library_internals.uvicorn_protocol:HttpToolsProtocol"
    assert pairs["--loop"] == "uvloop" and pairs["--ws"] == "websockets-sansio"
    assert pairs["--ws-max-size"] == serve.WEBSOCKET_MAX_BYTES and pairs["--workers"] == "4"
    assert "--proxy-headers" in argv and "--no-access-log" in argv


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


@pytest.mark.integration
@pytest.mark.parametrize("server_name", ["uvicorn", "daphne"])
def test_two_processes_serve_one_port(server_factory, server_name):
    from conftest import test_database_env
    from plumbing.devserver import Server

    server = Server({"DB_DEFAULT": test_database_env()}, server=server_name, workers=2).start()
    try:
        with requests.Session() as session:
            assert all(session.get(server.url + "/healthz", timeout=5).status_code == 200
                       for _ in range(5))
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes()
                    for pid in children(server.process.pid)]
        # uvicorn's supervisor spawns its workers (and a resource tracker beside them);
        # serve.py starts daphne once per process, on the socket it bound.
        worker = b"spawn_main" if server_name == "uvicorn" else b"daphne\0--fd"
        assert sum(worker in command for command in commands) == 2
    finally:
        server.stop()
