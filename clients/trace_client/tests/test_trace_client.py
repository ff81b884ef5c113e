"""The trace client: messages it builds (no network), then against a real Monitor server."""

import itertools
import json

import pytest
import requests
import websocket

from trace_client import TraceClient, TraceError, send_trace

STORED = {"message": "Trace stored. Closing the connection"}


class FakeSocket:
    def __init__(self, replies, fail_sends=0, close_code=1000):
        self.frames, self.replies, self.fail_sends, self.closed = [], list(replies), fail_sends, False
        self.close_code = close_code  # of the close frame after a {"message"} reply

    def send(self, frame):
        if self.fail_sends:
            self.fail_sends -= 1
            raise ConnectionResetError("dropped")
        self.frames.append(json.loads(frame))

    def recv(self):
        return json.dumps(self.replies.pop(0))

    def recv_data(self):
        return websocket.ABNF.OPCODE_CLOSE, self.close_code.to_bytes(2, "big")

    def close(self):
        self.closed = True


def fake_server(*sockets):
    urls = []
    pool = iter(sockets)

    def connect(url, timeout):
        urls.append(url)
        return next(pool)
    return connect, urls


def ticking_clock():
    return itertools.count(100).__next__


@pytest.mark.unit
def test_a_trace_with_spans_and_events_is_sent_in_frames_and_waits_for_the_reply():
    socket = FakeSocket([STORED])
    connect, urls = fake_server(socket)
    client = TraceClient("http://monitor:8000/", batch_size=3, clock=ticking_clock(), connect=connect)
    with client.trace(name="GET /movies", trace_id=7, service="web") as trace:
        with trace.span("db"):
            trace.event("miss")
    assert urls == ["ws://monitor:8000/ws/trace/7"]
    messages = [m for frame in socket.frames for m in frame]
    assert [len(f) for f in socket.frames] == [3, 3, 1]
    assert [(m["type"], m["timestamp"]) for m in messages] == [
        ("TRACE_START", 100), ("SPAN_START", 101), ("SPAN_START", 102), ("EVENT", 103),
        ("SPAN_END", 104), ("SPAN_END", 105), ("TRACE_END", 106)]
    root, db = messages[1], messages[2]
    assert root["name"] == "GET /movies" and root["service"] == "web" and db["name"] == "db"
    assert messages[4]["group_id"] == db["group_id"] and messages[5]["group_id"] == root["group_id"]
    assert messages[0]["group_id"] == messages[6]["group_id"]
    assert trace.reply == STORED and socket.closed


@pytest.mark.unit
def test_the_servers_error_is_raised():
    connect, _ = fake_server(FakeSocket([{"message": "Error: trace 7 is already stored (complete)"}]))
    client = TraceClient("ws://m", connect=connect)
    with pytest.raises(TraceError, match=r"^trace 7 is already stored \(complete\)$"):
        client.send(7, [{"type": "TRACE_START", "timestamp": 1, "group_id": "t"}])


@pytest.mark.unit
def test_a_dropped_connection_is_reopened_once_and_the_trace_continues():
    first, second = FakeSocket([], fail_sends=1), FakeSocket([STORED])
    connect, urls = fake_server(first, second)
    messages = [{"type": "TRACE_START", "timestamp": 1, "group_id": "t"},
                {"type": "TRACE_END", "timestamp": 2, "group_id": "t"}]
    assert send_trace("ws://m", 9, messages, batch_size=1, connect=connect) == STORED
    assert urls == ["ws://m/ws/trace/9"] * 2 and len(second.frames) == 2


@pytest.mark.unit
def test_an_unreachable_server_is_a_trace_error():
    client = TraceClient("ws://127.0.0.1:9", timeout=1)
    with pytest.raises(TraceError, match="cannot connect"):
        client.send(1, [{"type": "TRACE_START", "timestamp": 1, "group_id": "t"}])


@pytest.mark.integration
def test_against_a_real_server(server_factory):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    client = TraceClient(server.url, batch_size=2)
    with client.trace(name="checkout", service="shop") as trace:
        with trace.span("payments.charge"):
            trace.event("card accepted")
    body = requests.get(f"{server.url}/api/trace/{trace.id}/", timeout=5).json()
    assert body["status"] == "complete" and body["service"] == "shop"
    root = body["trace"]["children"][0]
    assert root["name"] == "checkout"
    assert root["children"][0]["name"] == "payments.charge"
    assert root["children"][0]["children"][0]["name"] == "card accepted"
    with pytest.raises(TraceError, match="already stored"):
        client.send(trace.id, [{"type": "EVENT", "timestamp": 1, "name": "late"}])


def test_an_exception_inside_a_span_is_its_error_status_with_an_exception_event(server_factory):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    client = TraceClient(server.url)
    with client.trace(name="GET /movies") as trace:
        with pytest.raises(ValueError, match="no such table"):
            with trace.span("db.query", attributes={"db.system": "postgresql"}) as span:
                span.set_attribute("db.rows", 0)
                raise ValueError("no such table: movies")
    body = requests.get(f"{server.url}/api/trace/{trace.id}/", timeout=5).json()
    assert body["status"] == "complete" and body["error_count"] == 1
    query = body["trace"]["children"][0]["children"][0]
    assert query["name"] == "db.query"
    assert query["status"] == {"code": "error", "message": "ValueError: no such table: movies"}
    assert query["attributes"] == {"db.system": "postgresql", "db.rows": 0}
    event = query["children"][0]
    assert event["name"] == "exception" and event["type"] == "EVENT"
    assert event["attributes"]["exception.type"] == "ValueError"
    assert event["attributes"]["exception.message"] == "no such table: movies"
    assert "raise ValueError" in event["attributes"]["exception.stacktrace"]
    listed = requests.get(f"{server.url}/api/traces/?error=true", timeout=5).json()["results"]
    assert [item["id"] for item in listed] == [trace.id]


class DroppingSocket(FakeSocket):
    """Answers `replies`, then the connection is gone."""

    def recv(self):
        if not self.replies:
            raise ConnectionResetError("server gone")
        return super().recv()


@pytest.mark.unit
def test_with_acks_frames_not_acknowledged_are_sent_again_after_a_drop():
    # The server acknowledged frame 1, then died before acknowledging 2 and 3.
    first = DroppingSocket([{"ack": 1}])
    second = DroppingSocket([{"ack": 3}, STORED])
    connect, urls = fake_server(first, second)
    messages = [{"type": "TRACE_START", "timestamp": 1, "group_id": "t"},
                {"type": "EVENT", "timestamp": 1, "name": "e"},
                {"type": "TRACE_END", "timestamp": 2, "group_id": "t"}]
    assert send_trace("ws://m", 9, messages, batch_size=1, connect=connect, acks=True) == STORED
    assert urls == ["ws://m/ws/trace/9?ack=1"] * 2
    assert [f["seq"] for f in first.frames] == [1, 2, 3]
    assert [(f["seq"], f["messages"]) for f in second.frames] == [(2, [messages[1]]),
                                                                   (3, [messages[2]])]


@pytest.mark.unit
def test_with_acks_a_lost_reply_is_asked_for_again_with_the_last_frame():
    first = DroppingSocket([{"ack": 1}])  # stored and acknowledged, but the reply was lost
    second = DroppingSocket([{"ack": 1}, STORED])
    connect, _ = fake_server(first, second)
    message = [{"type": "TRACE_START", "timestamp": 1, "group_id": "t"}]
    assert send_trace("ws://m", 9, message, connect=connect, acks=True) == STORED
    assert [f["seq"] for f in second.frames] == [1]


@pytest.mark.unit
def test_with_acks_a_server_that_stays_away_is_an_error_after_retry_for():
    def connect(url, timeout):
        raise TraceError("cannot connect")

    with pytest.raises(TraceError, match="for 0.3 s"):
        send_trace("ws://m", 9, [{"type": "TRACE_START", "timestamp": 1, "group_id": "t"}],
                   connect=connect, acks=True, retry_for=0.3)


@pytest.mark.unit
def test_with_acks_a_frame_the_server_could_not_store_is_sent_again_by_its_close_code():
    # Close code 4011: nothing of the frame was stored, whatever the reply's text says.
    first = FakeSocket([{"message": "Error: the database is down"}], close_code=4011)
    second = FakeSocket([{"ack": 1}, STORED])
    connect, urls = fake_server(first, second)
    message = [{"type": "TRACE_START", "timestamp": 1, "group_id": "t"}]
    assert send_trace("ws://m", 9, message, connect=connect, acks=True) == STORED
    assert [f["seq"] for f in first.frames] == [1] and [f["seq"] for f in second.frames] == [1]


@pytest.mark.unit
def test_with_acks_a_refused_frame_is_an_error_whatever_its_text():
    refused = {"message": "Error: message 0 (EVENT): 'name' says send it again later"}
    connect, _ = fake_server(FakeSocket([refused], close_code=4000))
    with pytest.raises(TraceError, match="says send it again later"):
        send_trace("ws://m", 9, [{"type": "EVENT", "timestamp": 1, "name": "x"}],
                   connect=connect, acks=True)
