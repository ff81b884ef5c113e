"""The trace websocket protocol against a real daphne process, with the websocket-client library
its existing clients use."""

import json
import threading
import time

import pytest
import requests
import websocket

from traces.models import Span, Trace
from traces.tests.helpers import (
    README_EXAMPLE,
    README_TREE_REST,
    STORED,
    span,
    trace_end,
    trace_start,
)

pytestmark = pytest.mark.integration


def test_readme_example_with_websocket_client(asgi_server):
    # The protocol's documented client code, exactly, against the real server.
    ws = websocket.create_connection(f"{asgi_server.ws_url}/ws/trace/1")
    ws.send(json.dumps(README_EXAMPLE))
    msg = ws.recv()
    assert json.loads(msg) == STORED
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1000
    trace = Trace.objects.get(id=1)
    assert trace.status == "complete"
    # Anonymous reads follow DASHBOARDS_PUBLIC, off on this server.
    assert requests.get(f"{asgi_server.url}/api/trace/1/").status_code == 403


def test_close_codes_and_errors_on_a_real_server(asgi_server):
    ws = websocket.create_connection(f"{asgi_server.ws_url}/ws/trace/2")
    ws.send("[{oops")
    opcode, data = ws.recv_data()
    assert json.loads(data)["message"].startswith("Error: invalid JSON")
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 4000
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(f"{asgi_server.ws_url}/ws/trace/abc")
    # The server is healthy after the error.
    ws = websocket.create_connection(f"{asgi_server.ws_url}/ws/trace/3")
    ws.send(json.dumps(README_EXAMPLE))
    assert json.loads(ws.recv()) == STORED
    opcode, data = ws.recv_data(control_frame=True)
    assert int.from_bytes(data[:2], "big") == 1000


def test_reconnect_after_a_dropped_connection_continues_the_trace(asgi_server):
    ws = websocket.create_connection(f"{asgi_server.ws_url}/ws/trace/4")
    ws.send(json.dumps(README_EXAMPLE[:4]))
    ws.sock.close()  # dropped without a closing handshake
    ws = websocket.create_connection(f"{asgi_server.ws_url}/ws/trace/4", timeout=10)
    ws.send(json.dumps(README_EXAMPLE[4:]))
    assert json.loads(ws.recv()) == STORED


def test_concurrent_connections_on_one_trace_keep_every_span(asgi_server):
    """Eight clients each send 25 frames of spans of one trace at the same time."""
    trace_id = 5
    errors = []

    def client(number):
        try:
            ws = websocket.create_connection(f"{asgi_server.ws_url}/ws/trace/{trace_id}", timeout=20)
            for frame in range(25):
                group = f"c{number}-{frame}"
                ws.send(json.dumps(span(group, group, 10 + frame, 11 + frame)))
            ws.send("[]")
            ws.close()
        except Exception as error:  # noqa: BLE001 - whatever it is, the test reports it
            errors.append(error)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    # Frames still queued in the server when a client closed are stored all the same.
    deadline = time.monotonic() + 20
    while Span.objects.filter(trace_id=trace_id).count() < 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    ws = websocket.create_connection(f"{asgi_server.ws_url}/ws/trace/{trace_id}", timeout=20)
    ws.send(json.dumps([trace_start(0), trace_end(100)]))
    assert json.loads(ws.recv()) == STORED
    trace = Trace.objects.get(id=trace_id)
    assert (trace.span_count, trace.spans.count(), trace.status) == (200, 200, "complete")


def test_get_and_delete_on_a_real_server(server_factory, django_user_model):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    ws = websocket.create_connection(f"{server.ws_url}/ws/trace/6")
    ws.send(json.dumps(README_EXAMPLE))
    ws.recv()
    response = requests.get(f"{server.url}/api/trace/6/")
    assert response.status_code == 200 and response.json()["trace"] == README_TREE_REST
    assert requests.get(f"{server.url}/api/trace/7/").status_code == 404
    assert requests.delete(f"{server.url}/api/trace/6/").status_code == 403


def test_a_decision_on_one_server_process_answers_the_trace_on_another(server_factory, redis_url):
    """Two server processes sharing the database and Redis: the trace's first frames went over
    a connection to one, its last over a connection to the other; both hear the reply."""
    first, second = server_factory(REDIS_URL=redis_url), server_factory(REDIS_URL=redis_url)
    waiting = websocket.create_connection(f"{first.ws_url}/ws/trace/6?ack=1", timeout=10)
    waiting.send(json.dumps({"seq": 1, "messages": README_EXAMPLE[:3]}))
    assert json.loads(waiting.recv()) == {"ack": 1}  # stored: the trace is open, with rows
    closing = websocket.create_connection(f"{second.ws_url}/ws/trace/6", timeout=10)
    closing.send(json.dumps(README_EXAMPLE[3:]))
    assert json.loads(closing.recv()) == STORED
    assert json.loads(waiting.recv()) == STORED
    opcode, data = waiting.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1000
    assert Trace.objects.get(id=6).status == "complete"
    # A trace sent whole over one connection is told to no other process, and still answered.
    whole = websocket.create_connection(f"{second.ws_url}/ws/trace/7", timeout=10)
    whole.send(json.dumps(README_EXAMPLE))
    assert json.loads(whole.recv()) == STORED
