"""traces/live.py: an OTLP trace's open page hears of each stored batch of its spans."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from trace_project.asgi import application
from traces import otel
from traces.span_ingest import ingest_spans
from traces.tests.test_otlp import CHILD, ROOT, TRACE, request_json, span_json

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

OTHER = "0af7651916cd43dd8448eb211c80319c"


@sync_to_async
def store(*spans):
    body = json.dumps(request_json(*spans)).encode()
    return ingest_spans(otel.decode_otlp_json(body))


async def test_each_stored_batch_reaches_the_traces_page(settings):
    settings.DASHBOARDS_PUBLIC = True
    live = WebsocketCommunicator(application, f"/ws/traces/{TRACE.upper()}/live/")
    assert (await live.connect())[0]
    await store(span_json(CHILD, parent=ROOT, name="child"))
    frame = await live.receive_json_from(timeout=5)
    assert frame == {"event": "trace.updated", "id": otel.row_id(TRACE), "trace_id": TRACE,
                     "status": "open"}
    await store(span_json(ROOT, name="root"))
    assert (await live.receive_json_from(timeout=5))["trace_id"] == TRACE
    # Another trace's batch is not this page's business; a batch stored again (an exporter
    # retrying) is announced again, harmlessly: the page refetches the same spans.
    await store({**span_json(ROOT, name="other root"), "traceId": OTHER})
    assert await live.receive_nothing(timeout=0.3)
    await live.disconnect()


async def test_the_hex_live_socket_needs_dashboard_access(settings):
    settings.DASHBOARDS_PUBLIC = False
    live = WebsocketCommunicator(application, f"/ws/traces/{TRACE}/live/")
    connected, code = await live.connect()
    assert connected is False and code == 4003
