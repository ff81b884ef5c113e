"""The trace websocket protocol over Channels' WebsocketCommunicator, on the project's
application."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path
from uvicorn.protocols.utils import ClientDisconnected

from trace_project.asgi import application
from traces.consumers import NoopTraceConsumer, decision_listener
from traces.models import Event, Span, Trace
from traces.services import trace_tree
from traces.tests.helpers import (
    README_EXAMPLE,
    README_TREE,
    STORED,
    event,
    protocol_tree,
    span,
    trace_end,
    trace_start,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def open_trace(trace_id, app=application):
    communicator = WebsocketCommunicator(app, f"/ws/trace/{trace_id}")
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def send(communicator, frame):
    await communicator.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))


async def reply_and_close(communicator):
    reply = await communicator.receive_json_from(timeout=5)
    closed = await communicator.receive_output(timeout=5)
    assert closed["type"] == "websocket.close"
    return reply, closed.get("code")


@sync_to_async
def stored(trace_id):
    trace = Trace.objects.filter(id=trace_id).first()
    if trace is None:
        return None
    return trace, protocol_tree(trace_tree(trace).tree)


@sync_to_async
def row_counts():
    return Trace.objects.count(), Span.objects.count(), Event.objects.count()


async def test_the_services_its_messages_name_are_offered_by_the_service_picker():
    from traces.search import known_services

    communicator = await open_trace(41)
    query = span("q", "SELECT", 2, 3)
    await send(communicator, [{**trace_start(1), "service": "api"}, {**query[0], "service": "db"},
                              query[1], trace_end(9)])
    assert (await reply_and_close(communicator))[1] == 1000
    assert await sync_to_async(known_services)() == ["api", "db"]
    communicator = await open_trace(42)  # names stored already, and none
    await send(communicator, [{**trace_start(1), "service": "api"}, trace_end(2)])
    assert (await reply_and_close(communicator))[1] == 1000
    communicator = await open_trace(43)
    await send(communicator, [trace_start(1), trace_end(2)])
    assert (await reply_and_close(communicator))[1] == 1000
    assert await sync_to_async(known_services)() == ["api", "db"]


@pytest.mark.postgresql
async def test_names_stored_lately_cost_no_statement_and_a_forgotten_one_comes_back(monkeypatch):
    """On the event loop the names a batch stored are kept for a while: a batch naming only
    those sends no statement for them (service_names.RECENT_SECONDS)."""
    from traces import asyncdb, service_names
    from traces.models import Service
    from traces.search import known_services

    names_statements = []
    run_alone = asyncdb.run_alone

    async def counted(sql, params):
        if "traces_service" in sql:
            names_statements.append(params)
        return await run_alone(sql, params)

    monkeypatch.setattr(asyncdb, "run_alone", counted)

    async def trace_naming(trace_id, root_service, *span_services):
        """A trace whose start names root_service, with a span naming each of span_services."""
        spans = [span(f"s{n}", "q", 2, 3) for n in range(len(span_services))]
        communicator = await open_trace(trace_id)
        await send(communicator, [{**trace_start(1), "service": root_service},
                                  *[{**start, "service": service}
                                    for (start, _), service in zip(spans, span_services)],
                                  *[end for _, end in spans], trace_end(9)])
        assert (await reply_and_close(communicator))[1] == 1000

    await trace_naming(51, "api", "db")
    await trace_naming(52, "db", "api")
    await trace_naming(53, "api", "cache")
    assert names_statements == [[["api", "db"]], [["cache"]]]
    assert await sync_to_async(known_services)() == ["api", "cache", "db"]
    # The daily job forgot them (as if no span had them); once no longer recent, they are back.
    await sync_to_async(lambda: Service.objects.all().delete())()
    monkeypatch.setattr(service_names, "RECENT_SECONDS", 0.0)
    await trace_naming(54, "api")
    assert names_statements[-1] == [["api"]]
    assert await sync_to_async(known_services)() == ["api"]


@pytest.mark.postgresql
async def test_a_batch_with_the_end_reads_the_stored_rows_in_the_lock_s_round_trip(monkeypatch):
    """On the event loop a later batch that holds TRACE_END reads every stored row with its
    lock (one round trip); one that completes the trace without it reads them in a step of its
    own. Both assemble the whole trace."""
    from traces import asyncdb

    round_trips = []
    run = asyncdb.Transaction.run

    async def counted(self, statements, read=None, commit=False):
        round_trips[-1] += 1
        return await run(self, statements, read, commit)

    monkeypatch.setattr(asyncdb.Transaction, "run", counted)
    query, fetch = span("q", "SELECT", 2, 3), span("f", "GET", 4, 6)
    for trace_id, frames in (
            (61, [[trace_start(1), query[0], fetch[0]], [query[1], fetch[1], trace_end(9)]]),
            (62, [[trace_start(1), query[0], fetch[0]], [query[1], trace_end(9)], [fetch[1]]])):
        communicator = await open_trace(trace_id)
        for frame in frames:
            round_trips.append(0)
            await send(communicator, frame)
            if frame is not frames[-1]:
                assert await communicator.receive_nothing(timeout=0.3)
        assert await reply_and_close(communicator) == (STORED, 1000)
        trace, tree = await stored(trace_id)
        assert trace.status == "complete" and (trace.span_count, trace.event_count) == (2, 0)
        assert tree == {"start": 1, "end": 9, "type": "TRACE", "children": [
            {"name": "SELECT", "start": 2, "end": 3, "type": "SPAN"},
            {"name": "GET", "start": 4, "end": 6, "type": "SPAN"}]}
    # The first frame of each makes its trace in one statement of its own (no Transaction).
    assert round_trips == [0, 2, 0, 2, 3]


# --- the cases the trace demo server tested ---------------------------------------------------

@pytest.mark.parametrize("bad_id", ["abc", "1a", "-1", "0"])
async def test_a_non_numeric_id_fails_the_handshake(bad_id):
    communicator = WebsocketCommunicator(application, f"/ws/trace/{bad_id}")
    connected, _ = await communicator.connect()
    assert connected is False


async def test_one_frame_readme_example_is_stored_and_closes_1000():
    communicator = await open_trace(1)
    await send(communicator, README_EXAMPLE)
    assert await reply_and_close(communicator) == (STORED, 1000)
    trace, tree = await stored(1)
    assert trace.status == "complete" and tree == README_TREE
    assert (trace.span_count, trace.event_count, trace.name) == (2, 1, "movies_load")


async def test_two_frames_reply_once_after_the_second():
    communicator = await open_trace(2)
    await send(communicator, README_EXAMPLE[:3])
    assert await communicator.receive_nothing(timeout=0.3)
    await send(communicator, README_EXAMPLE[3:])
    assert await reply_and_close(communicator) == (STORED, 1000)
    assert (await stored(2))[1] == README_TREE


async def test_incomplete_trace_gets_no_reply_and_is_kept_open():
    communicator = await open_trace(3)
    await send(communicator, README_EXAMPLE[:-1])
    await send(communicator, [])
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()
    trace, _ = await stored(3)
    assert trace.status == "open" and trace.span_count == 2


# --- keep rows -----------------------------------------------------------------------------------

async def test_a_single_object_is_a_one_item_list():
    communicator = await open_trace(4)
    for message in README_EXAMPLE:
        await send(communicator, message)
    assert await reply_and_close(communicator) == (STORED, 1000)
    assert (await stored(4))[1] == README_TREE


async def test_float_timestamps_keep_their_digits_and_ints_stay_ints():
    communicator = await open_trace(5)
    await send(communicator, [trace_start(1569972082.25), *span("s", "work", 1569972082.5,
                              1569972083.125), event("tick", 1569972083.000001), trace_end(1569972084)])
    assert (await reply_and_close(communicator))[1] == 1000
    _, tree = await stored(5)
    assert tree["start"] == 1569972082.25 and isinstance(tree["end"], float)
    assert tree["children"][0]["end"] == 1569972083.125
    assert tree["children"][0]["children"][0]["timestamp"] == 1569972083.000001
    communicator = await open_trace(6)
    await send(communicator, README_EXAMPLE)
    await reply_and_close(communicator)
    _, tree = await stored(6)
    assert isinstance(tree["start"], int) and isinstance(tree["children"][0]["end"], int)


async def test_attributes_and_status_are_stored_as_objects_by_both_write_paths():
    # The first frame of a new trace is written in one statement (storage.create_statement);
    # the second updates the span it started (storage._write_statements). Attributes are
    # objects in the stored rows and the tree, and a message without them stores NULL.
    attributes = {"db.system": "postgresql", "tags": ["x", 1, 2.5, True], "quote": "a\"b\\c'd"}
    communicator = await open_trace(7)
    await send(communicator, [
        trace_start(1), {"type": "SPAN_START", "timestamp": 2, "group_id": "a", "name": "db",
                         "attributes": attributes},
        {"type": "SPAN_START", "timestamp": 2, "group_id": "b", "name": "plain"},
        {"type": "EVENT", "timestamp": 3, "name": "hit", "attributes": {"key": "é"}}])
    assert await communicator.receive_nothing(timeout=0.3)
    await send(communicator, [
        {"type": "SPAN_END", "timestamp": 4, "group_id": "a", "attributes": {"rows": 0},
         "status": {"code": "error", "message": "ValueError: boom"}},
        {"type": "SPAN_END", "timestamp": 4, "group_id": "b"}, trace_end(5)])
    assert await reply_and_close(communicator) == (STORED, 1000)

    @sync_to_async
    def rows():
        return ({s.group_id: (s.attributes, s.status_code, s.status_message)
                 for s in Span.objects.filter(trace_id=7)},
                [e.attributes for e in Event.objects.filter(trace_id=7)],
                list(Span.objects.filter(trace_id=7, attributes__isnull=True)
                     .values_list("group_id", flat=True)))

    spans, events, sql_null = await rows()
    assert spans == {"a": ({**attributes, "rows": 0}, Span.ERROR, "ValueError: boom"),
                     "b": (None, 0, "")}
    assert sql_null == ["b"]  # NULL, not JSON's null
    assert events == [{"key": "é"}]


# --- fix rows ------------------------------------------------------------------------------------

async def test_trace_end_before_trace_start_across_frames_completes():
    communicator = await open_trace(10)
    await send(communicator, [trace_end(20), *span("a", "late", 12, 18)])
    assert await communicator.receive_nothing(timeout=0.2)
    await send(communicator, [trace_start(10)])
    assert await reply_and_close(communicator) == (STORED, 1000)


async def test_a_span_after_trace_end_in_the_same_frame_is_kept():
    communicator = await open_trace(11)
    await send(communicator, [trace_start(1), trace_end(9), *span("s", "after-end", 2, 3)])
    assert await reply_and_close(communicator) == (STORED, 1000)
    _, tree = await stored(11)
    assert tree["children"][0]["name"] == "after-end"


async def test_a_dropped_connection_loses_nothing_and_a_reconnect_continues():
    first = await open_trace(12)
    await send(first, README_EXAMPLE[:4])
    assert await first.receive_nothing(timeout=0.2)
    await first.disconnect()  # dropped before the end
    second = await open_trace(12)
    # The client resends one message it was unsure about: an exact repeat is ignored.
    await send(second, README_EXAMPLE[3:])
    assert await reply_and_close(second) == (STORED, 1000)
    trace, tree = await stored(12)
    assert tree == README_TREE and trace.span_count == 2


@pytest.mark.parametrize("frame, reason", [
    ("[{not json", "Error: invalid JSON at line 1 column 3"),
    ('"hello"', "Error: a frame must be a JSON list of messages"),
    ([{"type": "SPAN_BEGIN", "timestamp": 1}], "Error: message 0: unknown type \"SPAN_BEGIN\""),
    ([event("ok", 1), {"type": "SPAN_START", "timestamp": 1, "group_id": "g"}],
     "Error: message 1 (SPAN_START): missing key 'name'"),
    ([{"type": "TRACE_START", "timestamp": "yesterday", "group_id": "t"}],
     "Error: message 0 (TRACE_START): 'timestamp' must be a number"),
    ([{"type": "EVENT", "timestamp": -5, "name": "e"}],
     "Error: message 0 (EVENT): 'timestamp' must be a finite number from 0"),
    ([trace_start(1), trace_start(2)], "Error: message 1 (TRACE_START): the trace already has"),
])
async def test_bad_input_is_named_closes_4000_and_stores_nothing_from_the_frame(frame, reason):
    communicator = await open_trace(20)
    await send(communicator, [trace_start(1, "other")] if "already has" not in reason else [])
    await send(communicator, frame)
    reply, code = await reply_and_close(communicator)
    assert code == 4000 and reply["message"].startswith(reason), reply
    assert await row_counts() in ((1, 0, 0), (0, 0, 0))
    trace = Trace.objects.filter(id=20)
    if await sync_to_async(trace.exists)():
        assert (await sync_to_async(trace.get)()).status == "open"
    # The server is healthy: the same trace can be continued and finished.
    again = await open_trace(21)
    await send(again, README_EXAMPLE)
    assert await reply_and_close(again) == (STORED, 1000)


async def test_a_frame_over_the_size_limit_is_refused(settings):
    settings.TRACE_MAX_FRAME_MESSAGES = 5
    communicator = await open_trace(22)
    await send(communicator, README_EXAMPLE)
    reply, code = await reply_and_close(communicator)
    assert code == 4000
    assert reply["message"] == "Error: frame of 7 messages is over the limit of 5 messages"
    assert await row_counts() == (0, 0, 0)
    settings.TRACE_MAX_FRAME_BYTES = 100
    communicator = await open_trace(22)
    await send(communicator, README_EXAMPLE[:2])
    reply, code = await reply_and_close(communicator)
    assert code == 4000 and "bytes is over the limit of 100 bytes" in reply["message"]


async def test_a_trace_without_spans_or_events_has_no_infinity():
    communicator = await open_trace(30)
    await send(communicator, [trace_start(5), trace_end(7)])
    assert await reply_and_close(communicator) == (STORED, 1000)
    trace, tree = await stored(30)
    assert tree == {"start": 5, "end": 7, "type": "TRACE", "children": []}
    assert trace.duration == 2


async def test_reusing_the_id_of_a_stored_trace_is_refused_clearly():
    communicator = await open_trace(31)
    await send(communicator, README_EXAMPLE)
    await reply_and_close(communicator)
    again = await open_trace(31)
    await send(again, [event("more", 1569972085)])
    reply, code = await reply_and_close(again)
    assert code == 4000
    assert reply["message"] == (
        "Error: trace 31 is already stored (complete); send a new trace under a new id"
    )
    assert (await stored(31))[0].event_count == 1


async def test_a_decision_heard_late_is_not_the_answer_of_a_connection_opened_after_it():
    """Another server process's decision reaches this one through Redis, and may arrive after a
    new connection to the trace opened: that connection stored nothing of the trace, and its
    frames get their own answer."""
    first = await open_trace(33)
    await send(first, README_EXAMPLE)
    assert await reply_and_close(first) == (STORED, 1000)
    again = await open_trace(33)
    listener = await decision_listener()
    # What DecisionListener._receive does with the decision's message from the channel layer.
    listener.tell({"event": "trace.decided", "id": 33, "reply": STORED["message"]})
    await send(again, [event("late", 1569972085)])
    reply, code = await reply_and_close(again)
    assert code == 4000 and "trace 33 is already stored (complete)" in reply["message"]


async def test_an_inconsistent_trace_is_kept_and_the_client_told_why():
    communicator = await open_trace(32)
    await send(communicator, [trace_start(10), trace_end(20), *span("s", "early", 5, 15)])
    reply, code = await reply_and_close(communicator)
    assert code == 4000
    assert reply["message"] == (
        "Error: trace 32 is inconsistent: span 'early' (group_id 's') [5, 15] is not inside "
        "the trace [10, 20]"
    )
    trace, _ = await stored(32)
    assert trace.status == "inconsistent" and trace.problems


async def test_two_connections_on_one_trace_interleave_without_corruption():
    a, b = await open_trace(40), await open_trace(40)
    await send(a, [trace_start(0), *span("a1", "a", 1, 2)])
    await send(b, [*span("b1", "b", 3, 4), {"type": "SPAN_START", "timestamp": 5,
                                            "group_id": "x", "name": "shared"}])
    assert await a.receive_nothing(timeout=0.2)
    await send(a, [{"type": "SPAN_END", "timestamp": 6, "group_id": "x"}, trace_end(9)])
    assert await reply_and_close(a) == (STORED, 1000)
    # The other connection of the trace hears the decision too, exactly once.
    assert await reply_and_close(b) == (STORED, 1000)
    trace, tree = await stored(40)
    assert trace.span_count == 3 and trace.unfinished_span_count == 0
    assert [child["name"] for child in tree["children"]] == ["a", "b", "shared"]


async def test_a_trace_completed_by_another_connection_answers_the_waiting_client():
    waiting = await open_trace(41)
    await send(waiting, README_EXAMPLE[:3])
    other = await open_trace(41)  # e.g. the old connection's last frame, still queued
    await send(other, README_EXAMPLE[3:])
    assert await reply_and_close(other) == (STORED, 1000)
    assert await reply_and_close(waiting) == (STORED, 1000)
    inconsistent = await open_trace(42)
    await send(inconsistent, [trace_start(10)])
    closer = await open_trace(42)
    await send(closer, [trace_end(5)])
    assert (await reply_and_close(closer))[1] == 4000
    reply, code = await reply_and_close(inconsistent)
    assert code == 4000 and "inconsistent" in reply["message"]


class GoneClient:
    """The project's application behind a server whose client has dropped the connection once
    `gone` is set: every send raises, as uvicorn's ClientDisconnected (an OSError) does."""

    def __init__(self, app):
        self.app, self.gone = app, False

    async def __call__(self, scope, receive, send):
        async def sending(message):
            if self.gone:
                raise ClientDisconnected()
            await send(message)

        await self.app(scope, receive, sending)


async def test_a_frame_stored_after_its_client_dropped_still_answers_the_reconnected_client():
    # A client sent the trace's first messages, dropped the connection and sent the rest on a
    # new one, which the server stored first. The dropped connection's frame, stored last,
    # decides the trace: its reply cannot be sent, and the new connection hears it all the same
    # (it waited for ever when the failed send stopped the decision; CI, 2026-12-07).
    reconnected = await open_trace(43)
    await send(reconnected, README_EXAMPLE[4:])
    for _ in range(250):
        found = await stored(43)
        if found is not None and found[0].event_count:
            break
        await asyncio.sleep(0.02)
    app = GoneClient(application)
    dropped = await open_trace(43, app)
    app.gone = True
    await send(dropped, README_EXAMPLE[:4])
    assert await reply_and_close(reconnected) == (STORED, 1000)
    trace, tree = await stored(43)
    assert trace.status == "complete" and tree == README_TREE
    await dropped.disconnect()


async def test_the_live_socket_hears_of_each_stored_frame(settings):
    settings.DASHBOARDS_PUBLIC = True
    live = WebsocketCommunicator(application, "/ws/traces/50/live/")
    assert (await live.connect())[0]
    communicator = await open_trace(50)
    await send(communicator, README_EXAMPLE[:2])
    frame = await live.receive_json_from(timeout=5)
    assert frame == {"event": "trace.updated", "id": 50, "status": "open", "span_count": 1,
                     "event_count": 0}
    await send(communicator, README_EXAMPLE[2:])
    assert (await live.receive_json_from(timeout=5))["status"] == "complete"
    # A refused frame publishes nothing.
    bad = await open_trace(50)
    await send(bad, [event("x", 1)])
    await reply_and_close(bad)
    assert await live.receive_nothing(timeout=0.2)
    await live.disconnect()
    await communicator.disconnect()


async def test_the_live_socket_needs_dashboard_access(settings):
    settings.DASHBOARDS_PUBLIC = False
    live = WebsocketCommunicator(application, "/ws/traces/50/live/")
    connected, code = await live.connect()
    assert connected is False and code == 4003


async def test_the_noop_baseline_replies_on_trace_end_only():
    app = URLRouter([path("ws/bench/noop/<int:trace_id>", NoopTraceConsumer.as_asgi())])
    communicator = WebsocketCommunicator(app, "/ws/bench/noop/60")
    assert (await communicator.connect())[0]
    await send(communicator, README_EXAMPLE[:2])
    assert await communicator.receive_nothing(timeout=0.1)
    await send(communicator, README_EXAMPLE[2:])
    assert await reply_and_close(communicator) == (STORED, 1000)
    assert await row_counts() == (0, 0, 0)


async def test_frames_sent_back_to_back_are_all_stored_and_answered_once():
    communicator = await open_trace(70)
    for message in README_EXAMPLE:  # seven frames, queued while the first ones are stored
        await send(communicator, [message])
    assert await reply_and_close(communicator) == (STORED, 1000)
    assert (await stored(70))[1] == README_TREE
    communicator = await open_trace(71)
    await send(communicator, README_EXAMPLE[:2])
    await send(communicator, "not json")
    await send(communicator, README_EXAMPLE[2:])
    reply, code = await reply_and_close(communicator)
    assert code == 4000 and reply["message"].startswith("Error: invalid JSON")
    trace, _ = await stored(71)
    assert trace.is_open and trace.span_count == 1  # the frame before the bad one, not after


# --- hostile frames: bad input is 4000 with the reason, never "send it again later" (4011) ------

HOSTILE_FRAMES = {
    "deep nesting": ("[" * 100_000 + "]" * 100_000, "Error: JSON nested too deeply"),
    "a 5,000-digit integer": ('[{"type": "EVENT", "timestamp": ' + "9" * 5000 + ', "name": "e"}]',
                              "Error: invalid JSON: Exceeds the limit (4300 digits)"),
    "a 401-digit timestamp": ([{"type": "EVENT", "timestamp": 10 ** 400, "name": "e"}],
                              "Error: message 0 (EVENT): 'timestamp' must be a finite number"),
    "a lone surrogate in a name": ('[{"type": "EVENT", "timestamp": 1, "name": "a\\ud800b"}]',
                                   "Error: message 0 (EVENT): 'name'"),
    "a lone surrogate in a group id": (
        '[{"type": "SPAN_START", "timestamp": 1, "group_id": "\\udfff", "name": "s"}]',
        "Error: message 0 (SPAN_START): 'group_id'"),
}


@pytest.mark.parametrize("frame, reason", HOSTILE_FRAMES.values(), ids=HOSTILE_FRAMES.keys())
async def test_hostile_frames_close_4000_with_the_reason_and_store_nothing(frame, reason):
    communicator = await open_trace(30)
    await send(communicator, frame)
    reply, code = await reply_and_close(communicator)
    assert code == 4000 and reply["message"].startswith(reason), reply
    assert await row_counts() == (0, 0, 0)


@pytest.mark.parametrize("seq", ["9" * 5000, str(2 ** 64), "-1", '"1"'])
async def test_a_hostile_ack_seq_closes_4000(seq):
    communicator = WebsocketCommunicator(application, "/ws/trace/31?ack=1")
    assert (await communicator.connect())[0]
    await send(communicator, '{"seq": ' + seq + ', "messages": [{"type": "EVENT", "timestamp": 1, '
                                                '"name": "e"}]}')
    reply, code = await reply_and_close(communicator)
    assert code == 4000 and reply["message"].startswith("Error: "), reply
    assert await row_counts() == (0, 0, 0)
