"""The trace context the tracker sends: traceparent headers as W3C Trace Context level 1 reads
them, and the app's recording OpenTelemetry span in a Flask app (the Django middleware's is
proved end to end in test_request_tracker_traces.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor_request_tracker.config import TrackerConfig, ingest_url
from monitor_request_tracker.sender import Sender, request_item
from monitor_request_tracker.tracecontext import parse_traceparent

SRC = Path(__file__).resolve().parent.parent / "src"
TRACE, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize("header, expected", [
    (f"00-{TRACE}-{PARENT}-01", (TRACE, PARENT)),
    (f"00-{TRACE}-{PARENT}-00", (TRACE, PARENT)),  # not sampled: still the request's trace
    (f" 00-{TRACE}-{PARENT}-01\t", (TRACE, PARENT)),  # optional whitespace around
    (f"01-{TRACE}-{PARENT}-01-more", (TRACE, PARENT)),  # a later version: its first fields
    (f"01-{TRACE}-{PARENT}-01", (TRACE, PARENT)),
    (f"ff-{TRACE}-{PARENT}-01", None),  # version ff is invalid
    (f"00-{TRACE}-{PARENT}-01-more", None),  # version 00 is exactly 55 characters
    (f"01-{TRACE}-{PARENT}-01x", None),  # a later version's extra fields follow a dash
    (f"00-{'0' * 32}-{PARENT}-01", None),
    (f"00-{TRACE}-{'0' * 16}-01", None),
    (f"00-{TRACE.upper()}-{PARENT}-01", None),  # lowercase hex only
    (f"0g-{TRACE}-{PARENT}-01", None),
    (f"00-{TRACE}-{PARENT}-0x", None),
    (f"00_{TRACE}_{PARENT}_01", None),
    (f"00-{TRACE}-{PARENT}", None),
    ("", None), (None, None), (b"00-...", None),
])
def test_traceparent_headers(header, expected):
    assert parse_traceparent(header) == expected


def sent_events(items):
    sender = Sender(TrackerConfig(project_id="p", project_token="t",
                                  ingest_url=ingest_url("http://127.0.0.1:9/"), enabled=True),
                    transport=object())
    try:
        return json.loads(sender.serialise(items, 0))["events"]
    finally:
        sender._stop.set()


def test_events_carry_the_trace_context_they_were_served_in():
    events = sent_events([
        request_item("/a", traceparent=f"00-{TRACE}-{PARENT}-01"),
        request_item("/a", traceparent="garbage"),
        request_item("/a", trace_id=int(TRACE, 16), span_id=int(PARENT, 16)),
        request_item("/a"),
    ])
    contexts = [(e.get("trace_id"), e.get("span_id")) for e in events]
    # From a header only the trace id: its span id is the caller's, not this request's.
    assert contexts == [(TRACE, None), (None, None), (TRACE, PARENT), (None, None)]
    assert {e["path"] for e in events} == {"/a"}  # alike requests still share their fragment


FLASK_APP_WITH_OTEL = """
import json

from flask import Flask, g
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider

from monitor_request_tracker.config import resolve
from monitor_request_tracker.flask import Tracker
from monitor_request_tracker.sender import get_sender

trace.set_tracer_provider(TracerProvider())
tracer = trace.get_tracer("app")
app = Flask("otel_app")
app.config["RIGID_ANALYTICS"] = {"PROJECT_ID": "p", "PROJECT_TOKEN": "t",
                                 "DEBUG_DISABLE_ANALYTICS": False,
                                 "BACKEND_ENDPOINT": "http://127.0.0.1:9/"}
queued, spans = [], []
# What the request thread queues, before the sender thread sends it.
get_sender(resolve(app.config["RIGID_ANALYTICS"], False)).record = queued.append


@app.before_request
def open_span():  # as FlaskInstrumentor does: a SERVER span, current around the request
    g.span = tracer.start_span("GET /", kind=trace.SpanKind.SERVER)
    g.token = context.attach(trace.set_span_in_context(g.span))


@app.teardown_request
def close_span(error):
    context.detach(g.token)
    g.span.end()
    spans.append(g.span.get_span_context())


app.add_url_rule("/", "home", lambda: "hi")
Tracker(app)
client = app.test_client()
client.get("/", headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
print(json.dumps({"queued": [list(item[2:4]) for item in queued],
                  "span": [spans[0].trace_id, spans[0].span_id]}))
"""


def test_flask_tracker_takes_the_apps_recording_span():
    """An app with the OpenTelemetry SDK whose hooks make a SERVER span current around each
    request: the tracker queues that span's ids, not the header's (in a process of its own: a
    tracer provider is set once per process)."""
    result = subprocess.run([sys.executable, "-c", FLASK_APP_WITH_OTEL], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(SRC)})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["queued"] == [answer["span"]]
    assert answer["span"][0] != int(TRACE, 16)  # the app's instrumentation started a new trace
