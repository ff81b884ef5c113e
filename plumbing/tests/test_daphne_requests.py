"""plumbing/library_internals/daphne_requests.py (daphne) and
plumbing/library_internals/uvicorn_protocol.py (uvicorn): the header deadline and bodies left to
Django, against each real server; and a loud failure if the Twisted or uvicorn internals they
hook change."""

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


SERVERS = ["uvicorn", "daphne"]


def test_the_uvicorn_hooks_the_header_deadline_needs_exist():
    """If this fails, uvicorn changed its httptools protocol: uvicorn_protocol must be revisited."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    for hook in ("connection_made", "on_message_begin", "on_headers_complete", "connection_lost"):
        assert callable(getattr(HttpToolsProtocol, hook, None)), hook


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


@pytest.mark.parametrize("server_name", SERVERS)
def test_slow_headers_are_closed_with_408_and_others_are_served(server_factory, server_name):
    server = server_factory(HTTP_HEADER_TIMEOUT_SECONDS="2", MONITOR_SERVER=server_name)
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


@pytest.mark.parametrize("server_name", SERVERS)
def test_a_connection_that_sends_nothing_is_closed_after_the_deadline(server_factory,
                                                                     server_name):
    server = server_factory(HTTP_HEADER_TIMEOUT_SECONDS="1", MONITOR_SERVER=server_name)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # and no more
        answer = sock.recv(1000)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer


@pytest.mark.parametrize("server_name", SERVERS)
def test_a_malformed_multipart_body_reaches_django(server_factory, server_name):
    """Neither server parses (or refuses) a form body itself: the API answers in its shape."""
    server = server_factory(MONITOR_SERVER=server_name)
    response = requests.post(f"{server.url}/tracking/0f1e2d3c-0000-0000-0000-000000000000",
                             data=b"--b--", headers={
                                 "Content-Type": "multipart/form-data; boundary=b"}, timeout=10)
    assert response.status_code in (400, 401)  # as Django's parser reads it: no token in it
    assert response.headers["Content-Type"] == "application/json"
    assert {"detail", "code"} <= set(response.json())
