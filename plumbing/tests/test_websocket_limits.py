"""The websocket limits of docs/limits.md (plumbing/websocket_limits.py) against a real server
process (and the websocket stack through Channels' communicator where a scope detail matters):
what passes under the limit still passes, and what goes over it gets the answer the document
promises."""

import json
import time

import pytest
import websocket
from channels.testing import WebsocketCommunicator

from plumbing.tests.limited import SECRET, limited_server
from trace_project.asgi import application

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

def close_code(ws) -> int:
    """The code of the close frame the server sends next (after any text frames)."""
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big")


def still_open(ws, wait=0.3) -> bool:
    ws.settimeout(wait)
    try:
        ws.recv()
    except websocket.WebSocketTimeoutException:
        return True
    except websocket.WebSocketConnectionClosedException:
        return False
    finally:
        ws.settimeout(10)
    return False


def trace_frame(*messages):
    return json.dumps(list(messages))


def span(n, t):
    return [{"type": "SPAN_START", "timestamp": t, "group_id": f"s{n}", "name": f"span {n}"},
            {"type": "SPAN_END", "timestamp": t + 1, "group_id": f"s{n}"}]


START = {"type": "TRACE_START", "timestamp": 0, "group_id": "t"}
END = {"type": "TRACE_END", "timestamp": 1000, "group_id": "t"}
STORED = {"message": "Trace stored. Closing the connection"}


# --- websocket frames ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def socket_server(django_db_setup, django_db_blocker):
    """One server for the frame size and message rate tests (a server takes seconds to start)."""
    from conftest import test_database_env
    from plumbing.devserver import Server

    with django_db_blocker.unblock():
        database = test_database_env()
    server = Server({
        "DB_DEFAULT": database, "HTTP_MAX_BODY_BYTES": "0", "WEBSOCKET_MAX_FRAME_BYTES": "1000",
        "WEBSOCKET_MESSAGES_PER_SECOND": "10", "WEBSOCKET_MESSAGE_BURST": "5",
        "WEBSOCKET_MAX_CONNECTIONS_PER_CLIENT": "0", "DASHBOARDS_PUBLIC": "True", **SECRET,
    }).start()
    yield server
    server.stop()


def test_live_socket_takes_frames_up_to_the_limit_and_closes_4009_above(socket_server):
    server = socket_server
    ws = websocket.create_connection(server.ws_url + "/ws/machine/status/", timeout=10)
    ws.send("é" * 500)  # 1000 bytes of UTF-8
    assert still_open(ws)
    ws.send("é" * 500 + "x")
    assert json.loads(ws.recv()) == {
        "event": "closing", "code": 4009,
        "detail": "frame larger than 1000 bytes (WEBSOCKET_MAX_FRAME_BYTES); this socket takes "
                  "no frames that big"}
    assert close_code(ws) == 4009
    ws.close()

    # Trace ingest is not held to it: its frames are limited by TRACE_MAX_FRAME_BYTES.
    ws = websocket.create_connection(server.ws_url + "/ws/trace/11", timeout=10)
    ws.send(trace_frame(START, *[m for n in range(50) for m in span(n, n + 1)]))
    ws.send(trace_frame(END))
    assert json.loads(ws.recv()) == STORED


def test_the_server_closes_1009_on_a_message_over_its_own_cap(socket_server):
    """The server's cap on websocket messages (16 MiB as plumbing.serve starts daphne or
    uvicorn): the application never sees such a frame, on any socket; under it, the trace
    consumer answers a frame over TRACE_MAX_FRAME_BYTES (1 MiB) with its Error reply."""
    from plumbing.serve import WEBSOCKET_MAX_BYTES

    server = socket_server
    cap = int(WEBSOCKET_MAX_BYTES)
    ws = websocket.create_connection(server.ws_url + "/ws/trace/13", timeout=10)
    ws.send("x" * (1024 * 1024 + 1))
    assert json.loads(ws.recv())["message"].startswith("Error: frame of 1048577 bytes is over")
    ws = websocket.create_connection(server.ws_url + "/ws/trace/12", timeout=10)
    try:
        ws.send("x" * (cap + 1))
        code = close_code(ws)
    except (ConnectionResetError, BrokenPipeError):
        # autobahn sends its close frame and drops the connection at once, as soon as it reads
        # the frame's header; the client may still be writing the payload and get a reset.
        code = 1009
    assert code == 1009
    ws = websocket.create_connection(server.ws_url + "/ws/trace/12", timeout=10)
    ws.send(trace_frame(START, END))
    assert json.loads(ws.recv()) == STORED  # nothing of the big frame was taken


# --- messages per second per websocket ----------------------------------------------------------

def test_ingest_socket_over_the_message_rate_hears_why_and_is_closed_4029(socket_server):
    server = socket_server
    # Under the rate: 16 frames at 8 a second pass (three times the burst).
    ws = websocket.create_connection(server.ws_url + "/ws/trace/21", timeout=10)
    ws.send(trace_frame(START))
    for n in range(15):
        time.sleep(0.125)
        ws.send(trace_frame(*span(n, n + 1)))
    time.sleep(0.125)
    ws.send(trace_frame(END))
    assert json.loads(ws.recv()) == STORED

    # Over it: five frames at once are the burst; the sixth closes the socket with a reason.
    ws = websocket.create_connection(server.ws_url + "/ws/trace/22", timeout=10)
    ws.send(trace_frame(START))
    for n in range(4):
        ws.send(trace_frame(*span(n, n + 1)))
    ws.send(trace_frame(END))
    assert json.loads(ws.recv()) == {"message": (
        "Error: more than 10 messages a second on one connection (WEBSOCKET_MESSAGES_PER_SECOND, "
        "bursts of 5: WEBSOCKET_MESSAGE_BURST); frames before this one were taken, this one and "
        "later ones were not")}
    assert close_code(ws) == 4029
    # What came before the limit was stored: the END alone completes the trace.
    ws = websocket.create_connection(server.ws_url + "/ws/trace/22", timeout=10)
    ws.send(trace_frame(END))
    assert json.loads(ws.recv()) == STORED


async def test_live_socket_over_the_message_rate_is_closed_4029(settings):
    settings.DASHBOARDS_PUBLIC = True
    settings.WEBSOCKET_MESSAGES_PER_SECOND = 1
    settings.WEBSOCKET_MESSAGE_BURST = 3
    communicator = WebsocketCommunicator(application, "/ws/machine/status/")
    assert (await communicator.connect())[0]
    for _ in range(3):
        await communicator.send_to(text_data="{}")
    assert await communicator.receive_nothing(0.1)
    await communicator.send_to(text_data="{}")
    frame = await communicator.receive_json_from()
    assert frame["event"] == "closing" and frame["code"] == 4029
    assert "WEBSOCKET_MESSAGES_PER_SECOND" in frame["detail"]
    assert await communicator.receive_output() == {
        "type": "websocket.close", "code": 4029, "reason": frame["detail"][:123]}
    await communicator.wait()


# --- connections per client ---------------------------------------------------------------------

def test_connections_over_the_limit_per_address_hear_why_and_are_closed_4029(server_factory):
    server = limited_server(server_factory, WEBSOCKET_MAX_CONNECTIONS_PER_CLIENT=3)
    sockets = [websocket.create_connection(f"{server.ws_url}/ws/trace/{30 + n}", timeout=10)
               for n in range(3)]
    assert all(still_open(ws, 0.1) for ws in sockets)
    extra = websocket.create_connection(server.ws_url + "/ws/machine/status/", timeout=10)
    assert json.loads(extra.recv()) == {
        "event": "closing", "code": 4029,
        "detail": "too many websocket connections from this address: at most 3 per server "
                  "process (WEBSOCKET_MAX_CONNECTIONS_PER_CLIENT)"}
    assert close_code(extra) == 4029
    extra = websocket.create_connection(server.ws_url + "/ws/trace/40", timeout=10)
    assert json.loads(extra.recv())["message"].startswith("Error: too many websocket connections")
    assert close_code(extra) == 4029

    # A closed connection frees its place.
    sockets.pop().close()
    deadline = time.monotonic() + 5
    while True:
        ws = websocket.create_connection(server.ws_url + "/ws/trace/41", timeout=10)
        if still_open(ws, 0.2):
            break
        assert time.monotonic() < deadline, "the closed socket was never counted out"
    ws.send(trace_frame(START, END))
    assert json.loads(ws.recv()) == STORED


async def test_connections_are_counted_per_token_presented(settings):
    settings.DASHBOARDS_PUBLIC = True
    settings.WEBSOCKET_MAX_CONNECTIONS_PER_CLIENT = 2

    def open_socket(token):
        # The communicator's scope has no client address: only the token is counted. (Any
        # Authorization header counts; "Token", since a page's socket refuses a Bearer token
        # that is no personal API token: accounts/websocket.py.)
        return WebsocketCommunicator(application, "/ws/machine/status/",
                                     headers=[(b"authorization", f"Token {token}".encode())])

    first, second, third, other = (open_socket(t) for t in ("a", "a", "a", "b"))
    assert (await first.connect())[0] and (await second.connect())[0]
    assert (await third.connect())[0]  # accepted so that it can hear why, then closed
    frame = await third.receive_json_from()
    assert frame["code"] == 4029 and "from this token: at most 2" in frame["detail"]
    assert (await third.receive_output())["code"] == 4029
    assert (await other.connect())[0] and await other.receive_nothing(0.1)
    for communicator in (first, second, other):
        await communicator.disconnect()
