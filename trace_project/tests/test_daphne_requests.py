"""trace_project/daphne_requests.py: what it changes in daphne and Twisted, against a real daphne,
and a loud failure if the Twisted internals it hooks change."""

import socket
import threading
import time

import pytest
import requests

pytestmark = pytest.mark.integration


def test_the_twisted_hooks_the_header_deadline_needs_exist():
    """If this fails, Twisted changed HTTPChannel: time_out_slow_headers must be revisited."""
    from twisted.web import http

    for hook in ("dataReceived", "allHeadersReceived", "allContentReceived", "connectionLost",
                 "lineReceived"):
        assert callable(getattr(http.HTTPChannel, hook, None)), hook


def slow_client(port, results, index, every=0.4, lines=40):
    """Sends a request line, then one header line every `every` s; records the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    started = time.monotonic()
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for number in range(lines):
            time.sleep(every)
            sock.sendall(f"X-Slow-{number}: {number}\r\n".encode())
        results[index] = ("never closed", time.monotonic() - started)
    except OSError:
        answer = b""
        try:
            answer = sock.recv(1000)
        except OSError:
            pass
        results[index] = (answer, time.monotonic() - started)
    finally:
        sock.close()


def test_slow_headers_are_closed_with_408_and_others_are_served(server_factory):
    server = server_factory(HTTP_HEADER_TIMEOUT_SECONDS="2")
    results = [None] * 30
    clients = [threading.Thread(target=slow_client, args=(server.port, results, index))
               for index in range(len(results))]
    for client in clients:
        client.start()
    time.sleep(0.5)
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200  # not starved
    for client in clients:
        client.join(timeout=30)
    for answer, seconds in results:
        assert answer != "never closed"
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 1.5 < seconds < 6, seconds
    # Keep-alive and a body still work: the deadline covers headers only.
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(server.url + "/healthz", timeout=5).status_code == 200
            time.sleep(0.3)
        response = session.post(server.url + "/api/tracking/ingest/", data=b"x" * 100_000,
                                headers={"Content-Type": "application/json"}, timeout=10)
        assert response.status_code in (400, 401)
