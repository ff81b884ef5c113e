"""?ack=1 on /ws/trace/<id>: numbered frames, {"ack": seq} once stored, repeats not stored twice.

What a client that must not lose a message does: it keeps each frame until an ack covers it, and
after a dropped connection sends again every frame not acknowledged, on a new connection."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from trace_project.asgi import application
from traces.models import Event, Span, Trace
from traces.tests.helpers import STORED, event, span, trace_end, trace_start

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def open_acked(trace_id, query="?ack=1"):
    communicator = WebsocketCommunicator(application, f"/ws/trace/{trace_id}{query}")
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def send(communicator, seq, messages):
    await communicator.send_to(text_data=json.dumps({"seq": seq, "messages": messages}))


@sync_to_async
def rows(trace_id):
    trace = Trace.objects.filter(id=trace_id).first()
    return ((trace.status, trace.last_seq) if trace else None,
            sorted(Span.objects.filter(trace_id=trace_id).values_list("group_id", flat=True)),
            sorted(Event.objects.filter(trace_id=trace_id).values_list("name", flat=True)))


async def test_each_stored_frame_is_acknowledged_and_the_last_one_also_answered():
    communicator = await open_acked(1)
    await send(communicator, 1, [trace_start(1), *span("a", "load", 1, 3)])
    assert await communicator.receive_json_from(timeout=5) == {"ack": 1}
    await send(communicator, 2, [event("cached", 2)])
    assert await communicator.receive_json_from(timeout=5) == {"ack": 2}
    await send(communicator, 3, [trace_end(4)])
    assert await communicator.receive_json_from(timeout=5) == {"ack": 3}
    assert await communicator.receive_json_from(timeout=5) == STORED
    assert (await communicator.receive_output(timeout=5))["code"] == 1000
    assert await rows(1) == (("complete", 3), ["a"], ["cached"])


async def test_frames_resent_after_a_reconnect_are_not_stored_twice():
    first = await open_acked(2)
    await send(first, 1, [trace_start(1), event("e1", 1)])
    await send(first, 2, [event("e2", 2), *span("a", "load", 1, 2)])
    acks = [await first.receive_json_from(timeout=5) for _ in range(2)]
    assert acks[-1] == {"ack": 2}
    await first.disconnect()
    # The client was not sure of frame 2 (say its ack was lost): it sends 2 again, then 3.
    second = await open_acked(2)
    await send(second, 2, [event("e2", 2), *span("a", "load", 1, 2)])
    assert await second.receive_json_from(timeout=5) == {"ack": 2}
    await send(second, 3, [event("e3", 3), trace_end(4)])
    assert await second.receive_json_from(timeout=5) == {"ack": 3}
    assert await second.receive_json_from(timeout=5) == STORED
    assert await rows(2) == (("complete", 3), ["a"], ["e1", "e2", "e3"])


async def test_the_deciding_frame_resent_after_the_reply_was_lost_is_answered_again():
    first = await open_acked(3)
    await send(first, 1, [trace_start(1), event("only", 1), trace_end(2)])
    assert await first.receive_json_from(timeout=5) == {"ack": 1}
    assert await first.receive_json_from(timeout=5) == STORED
    again = await open_acked(3)  # the client never read those: it sends frame 1 again
    await send(again, 1, [trace_start(1), event("only", 1), trace_end(2)])
    assert await again.receive_json_from(timeout=5) == {"ack": 1}
    assert await again.receive_json_from(timeout=5) == STORED
    assert (await again.receive_output(timeout=5))["code"] == 1000
    assert await rows(3) == (("complete", 1), [], ["only"])


@pytest.mark.parametrize("frame, reason", [
    ([{"type": "EVENT", "timestamp": 1, "name": "x"}], "must be an object"),
    ({"seq": 0, "messages": []}, "'seq' must be an integer from 1"),
    ({"seq": "1", "messages": []}, "'seq' must be an integer from 1"),
    ({"seq": 1}, "with keys ['seq']"),
])
async def test_a_frame_without_a_proper_envelope_is_refused(frame, reason):
    communicator = await open_acked(4)
    await communicator.send_to(text_data=json.dumps(frame))
    reply = await communicator.receive_json_from(timeout=5)
    assert reply["message"].startswith("Error: ") and reason in reply["message"], reply
    assert (await communicator.receive_output(timeout=5))["code"] == 4000
    assert await rows(4) == (None, [], [])


async def test_without_ack_frames_are_seed_frames_and_nothing_is_acknowledged():
    communicator = await open_acked(5, query="")
    await communicator.send_to(text_data=json.dumps([trace_start(1), event("e", 1)]))
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.send_to(text_data=json.dumps([trace_end(2)]))
    assert await communicator.receive_json_from(timeout=5) == STORED


async def test_a_frame_that_would_pass_the_span_limit_is_refused_whole(settings):
    settings.TRACE_MAX_SPANS = 3
    communicator = await open_acked(6)
    await send(communicator, 1, [trace_start(1), *span("a", "a", 1, 2), *span("b", "b", 1, 2)])
    assert await communicator.receive_json_from(timeout=5) == {"ack": 1}
    await send(communicator, 2, [*span("c", "c", 1, 2), *span("d", "d", 1, 2)])
    reply = await communicator.receive_json_from(timeout=5)
    assert reply["message"] == (
        "Error: trace 6 would have 4 spans, over the limit of 3 spans per trace "
        "(TRACE_MAX_SPANS); nothing from this frame was stored")
    assert await rows(6) == (("open", 1), ["a", "b"], [])
