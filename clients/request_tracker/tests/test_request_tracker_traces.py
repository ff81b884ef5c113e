"""The W3C trace context end to end, with the real clients and a running Monitor server: our
tracker in a Flask app and in a Django app served over HTTP reads `traceparent` (and the
app's OpenTelemetry span); OpenTelemetry's own SDK exporters send SERVER spans that become
request metrics; a request both report is counted once."""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
import websocket
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from traces.models import Span
from tracking.models import Project, RequestMetric

pytestmark = pytest.mark.integration

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def traceparent(trace_id=TRACE, parent="00f067aa0ba902b7", flags="01", version="00"):
    return f"{version}-{trace_id}-{parent}-{flags}"


def wait_for(condition, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    return condition()


def summary_count(server, project):
    url = f"{server.url}/api/tracking/projects/{project.public_id}/summary/"
    return requests.get(url, timeout=10).json()["count"]


def test_flask_tracker_records_the_incoming_traceparent(server_factory, tracked_flask_app):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    project, token, base, tracker = tracked_flask_app(server, "Flask traced")
    headers = {
        1: traceparent(),
        2: traceparent(trace_id="a" * 32, version="cc") + "-future-fields",  # a later version
        3: traceparent(trace_id="b" * 32, flags="00"),  # not sampled: the trace id all the same
        # Malformed: each is ignored, the request is tracked without a trace.
        4: traceparent(trace_id="0" * 32),
        5: traceparent(parent="0" * 16),
        6: traceparent(trace_id=TRACE.upper()),
        7: traceparent(version="ff"),
        8: traceparent() + "-extra",  # version 00 is exactly 55 characters
        9: "00-4bf92f3577b34da6a3ce929d0e0e4736",
        10: None,
    }
    for number, value in headers.items():
        answer = requests.get(f"{base}/orders/{number}",
                              headers={"traceparent": value} if value else {}, timeout=10)
        assert answer.status_code == 200
    tracker.sender.flush(timeout=10)
    rows = wait_for(lambda: len(RequestMetric.objects.filter(project=project)) == 10
                    and RequestMetric.objects.filter(project=project))
    traces = {int(row.path.rsplit("/", 1)[1]): (row.trace_id, row.span_id) for row in rows}
    assert traces == {1: (TRACE, None), 2: ("a" * 32, None), 3: ("b" * 32, None),
                      **{number: (None, None) for number in range(4, 11)}}
    # The dashboard's API lists the trace id; no trace of it was sent, so no link.
    listed = requests.get(f"{server.url}/api/tracking/projects/{project.public_id}/requests/",
                          params={"trace_id": TRACE}, timeout=10).json()
    assert [(r["path"], r["trace_url"]) for r in listed["results"]] == [("/orders/1", None)]


def test_django_tracker_and_opentelemetry_report_each_request_once(server_factory):
    """The app runs OpenTelemetry (DjangoInstrumentor, the SDK's OTLP exporter) beside our
    middleware: the tracker records the SERVER span's ids, the span's export makes the same
    request metric, and each request is stored and counted once."""
    server = server_factory(DASHBOARDS_PUBLIC="True")
    project, token = Project.create_with_token("Django traced")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(SRC)]),
           "TRACKED_FRAMEWORK": "django", "RA_PROJECT_ID": str(project.public_id),
           "RA_PROJECT_TOKEN": token, "RA_BACKEND_ENDPOINT": server.url + "/",
           "TRACKED_OTLP_ENDPOINT": server.url + "/v1/traces", "TRACKED_OTLP_TOKEN": token}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = tempfile.TemporaryFile(mode="w+")
    app = subprocess.Popen([sys.executable, str(TESTS / "tracked_app_server.py")], env=env,
                           stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        base = f"http://127.0.0.1:{json.loads(app.stdout.readline())['port']}"
        incoming = {7: traceparent(), 8: traceparent(trace_id="c" * 32), 0: None}
        for item, value in incoming.items():
            answer = requests.get(f"{base}/items/{item}/",
                                  headers={"traceparent": value} if value else {}, timeout=10)
            assert answer.status_code == (404 if item == 0 else 200)
        # Both sources have delivered: the tracker (its stats say all sent) and OpenTelemetry
        # (each request's SERVER span is stored).
        def delivered():
            rows = RequestMetric.objects.filter(project=project, path__startswith="/items/")
            return (len(rows) == 3
                    and all(Span.objects.filter(span_id=row.span_id, kind=2).exists()
                            for row in rows)
                    and requests.get(f"{base}/_tracker/", timeout=10).json()["stats"]["sent"]
                    >= 3)

        assert wait_for(delivered)
    finally:
        app.terminate()
        app.wait(10)
        log.seek(0)
        errors = log.read()
    rows = list(RequestMetric.objects.filter(project=project).order_by("received_at"))
    by_path = {row.path: row for row in rows}
    assert set(by_path) >= {"/items/7/", "/items/8/", "/items/0/"}, errors
    assert len([row for row in rows if row.path.startswith("/items/")]) == 3
    assert summary_count(server, project) == len(rows)  # /_tracker/ requests included
    for path, trace_id in (("/items/7/", TRACE), ("/items/8/", "c" * 32)):
        row = by_path[path]
        # OpenTelemetry continued the incoming trace; the tracker took its SERVER span's ids.
        server_span = Span.objects.get(trace__trace_id=trace_id, kind=2)
        assert (row.trace_id, row.span_id) == (trace_id, server_span.span_id)
        # The first to arrive is kept: the tracker's view name, or OpenTelemetry's route.
        assert row.view_name in ("item", "items/<int:item_id>/") and row.status_code == 200
    new_root = by_path["/items/0/"]
    assert new_root.trace_id and new_root.span_id and new_root.status_code == 404
    assert Span.objects.filter(trace__trace_id=new_root.trace_id,
                               span_id=new_root.span_id, kind=2).exists()


def test_an_app_instrumented_only_with_opentelemetry_gets_request_metrics(server_factory):
    """No tracker: SERVER spans sent by the SDK's OTLP and Zipkin exporters, as an app in any
    language sends them, fill the same dashboard."""
    server = server_factory(DASHBOARDS_PUBLIC="True")
    project, token = Project.create_with_token("Any language")
    live = websocket.create_connection(f"{server.ws_url}/ws/metrics/{project.public_id}/",
                                       timeout=15)
    assert json.loads(live.recv())["type"] == "hello"
    auth = {"Authorization": f"Bearer {token}"}
    session = requests.Session()
    session.headers.update(auth)
    for exporter in (OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", headers=auth),
                     ZipkinExporter(endpoint=f"{server.url}/api/v2/spans", session=session)):
        provider = TracerProvider(resource=Resource.create({"service.name": "shop-go"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("app")
        for status in (200, 200, 500):
            with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER, attributes={
                    "http.request.method": "GET", "http.route": "/cart", "url.path": "/cart",
                    "http.response.status_code": status}):
                with tracer.start_as_current_span("SELECT cart", kind=SpanKind.CLIENT):
                    time.sleep(0.002)
        provider.shutdown()
    assert wait_for(lambda: summary_count(server, project) == 6)
    # The dashboard's live socket heard of them, as of the trackers' batches.
    heard = 0
    while heard < 6:
        frame = json.loads(live.recv())
        assert frame["type"] == "requests"
        heard += frame["accepted"]
    live.close()
    assert heard == 6
    summary = requests.get(f"{server.url}/api/tracking/projects/{project.public_id}/summary/",
                           timeout=10).json()
    assert summary["server_errors"] == 2
    assert [(v["view_name"], v["count"]) for v in summary["views"]] == [("/cart", 6)]
    rows = requests.get(f"{server.url}/api/tracking/projects/{project.public_id}/requests/",
                        timeout=10).json()["results"]
    # Each row links to its trace, which the same export stored.
    assert all(row["trace_url"] == f"{server.url}/traces/{row['trace_id']}/" for row in rows)
    assert all(row["duration_ms"] >= 2 for row in rows)
