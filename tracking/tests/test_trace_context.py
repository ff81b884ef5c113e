"""Requests and their W3C trace context: trace and span ids on ingest, OpenTelemetry SERVER
spans as request metrics (both generations of HTTP semantic conventions, OTLP and Zipkin), each
request counted once whichever source reports it first, and the links between requests and
traces. The real clients end to end: clients/request_tracker/tests/test_request_tracker_traces.py."""

import json
import time
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tracking import otel_requests
from tracking.models import Project, RequestMetric, RequestRollup, RequestSeriesRollup
from tracking.tests.conftest import batch_event, gzip_json

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
NOW_NS = time.time_ns() - 5_000_000_000


@pytest.fixture
def client(settings):
    settings.DASHBOARDS_PUBLIC = True
    return Client()


def post_batch(client, token, *events):
    return client.post("/api/tracking/ingest/", gzip_json({"events": list(events)}),
                       content_type="application/json", HTTP_CONTENT_ENCODING="gzip",
                       HTTP_AUTHORIZATION=f"Bearer {token}")


def otlp_span(trace_id=TRACE, span_id=SPAN, kind=2, attributes=None, start=NOW_NS,
              duration_ns=12_500_000, name="GET /items/{id}"):
    return {"traceId": trace_id, "spanId": span_id, "name": name, "kind": kind,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + duration_ns),
            "attributes": [{"key": key, "value": ({"intValue": str(value)}
                                                  if isinstance(value, int)
                                                  else {"stringValue": value})}
                           for key, value in (attributes or {}).items()]}


NEW_CONVENTIONS = {"http.request.method": "GET", "http.route": "/items/{id}",
                   "url.path": "/items/7", "url.query": "page=2&token=s3cret",
                   "http.response.status_code": 404, "user_agent.original": "probe/1",
                   "client.address": "203.0.113.9", "server.address": "shop.example",
                   "server.port": 8080}
OLD_CONVENTIONS = {"http.method": "POST", "http.route": "cart/", "http.target": "/cart/?x=1",
                   "http.status_code": 503, "http.user_agent": "old/1",
                   "net.peer.ip": "198.51.100.4", "http.host": "shop.example"}


def post_otlp(client, token, *spans):
    body = {"resourceSpans": [{"resource": {"attributes": []},
                               "scopeSpans": [{"spans": list(spans)}]}]}
    return client.post("/v1/traces", json.dumps(body), content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token}")


def counted(project) -> int:
    """Requests in the project's rollups (what the dashboard counts)."""
    minutes = RequestRollup.objects.filter(project=project, period_seconds=60)
    series = RequestSeriesRollup.objects.filter(project=project, period_seconds=60)
    assert sum(c.count for c in minutes) == sum(c.count for c in series)
    return sum(cell.count for cell in minutes)


# --- the tracker's batches ----------------------------------------------------------------------

def test_a_batch_event_keeps_its_trace_and_span_ids(client, project_and_token):
    project, token = project_and_token
    response = post_batch(client, token, batch_event(trace_id=TRACE.upper(), span_id=SPAN),
                          batch_event(trace_id=TRACE), batch_event())
    assert response.json()["accepted"] == 3
    assert sorted(RequestMetric.objects.values_list("trace_id", "span_id"),
                  key=str) == sorted([(TRACE, SPAN), (TRACE, None), (None, None)], key=str)


@pytest.mark.parametrize("fields, field, message", [
    ({"trace_id": "0" * 32}, "trace_id", "not all zero"),
    ({"trace_id": "xyz"}, "trace_id", "32 hex digits"),
    ({"trace_id": 5}, "trace_id", "be a string"),
    ({"trace_id": TRACE, "span_id": "0" * 16}, "span_id", "16 hex digits"),
    ({"span_id": SPAN}, "span_id", "eeds a trace_id"),
])
def test_a_bad_trace_context_rejects_its_event_naming_the_field(client, project_and_token,
                                                                  fields, field, message):
    project, token = project_and_token
    answer = post_batch(client, token, batch_event(), batch_event(**fields)).json()
    assert answer["accepted"] == 1 and answer["rejected"] == 1
    [rejected] = answer["rejected_events"]
    assert rejected["index"] == 1 and rejected["field"] == field
    assert message in rejected["message"]


def test_the_same_request_twice_is_stored_and_counted_once(client, project_and_token):
    project, token = project_and_token
    same = batch_event(trace_id=TRACE, span_id=SPAN)
    assert post_batch(client, token, same, same, batch_event()).json()["accepted"] == 3
    assert post_batch(client, token, same).json()["accepted"] == 1  # accepted, not again
    assert RequestMetric.objects.count() == 2 and counted(project) == 2
    # Another project may hold the same ids: once per project.
    other, other_token = Project.create_with_token("Other")
    post_batch(client, other_token, same)
    assert RequestMetric.objects.filter(project=other).count() == 1


# --- OpenTelemetry SERVER spans -----------------------------------------------------------------

def test_server_spans_become_request_metrics_with_either_conventions(client, project_and_token):
    project, token = project_and_token
    response = post_otlp(
        client, token,
        otlp_span(span_id="1000000000000001", attributes=NEW_CONVENTIONS),
        otlp_span(span_id="1000000000000002", attributes=OLD_CONVENTIONS),
        # Not requests: an internal span, a server span without a status, one without a path.
        otlp_span(span_id="1000000000000003", kind=1, attributes=NEW_CONVENTIONS),
        otlp_span(span_id="1000000000000004",
                  attributes={"http.request.method": "GET", "url.path": "/x"}),
        otlp_span(span_id="1000000000000005", attributes={"http.response.status_code": 200}))
    assert response.status_code == 200, response.content
    rows = {row.span_id: row for row in RequestMetric.objects.filter(project=project)}
    assert set(rows) == {"1000000000000001", "1000000000000002"}
    new, old = rows["1000000000000001"], rows["1000000000000002"]
    assert (new.method, new.path, new.query, new.view_name, new.status_code) == (
        "GET", "/items/7", "page=2&token=%5Bscrubbed%5D", "/items/{id}", 404)
    assert (new.user_agent, new.client_ip, new.headers) == (
        "probe/1", "203.0.113.9", {"Host": "shop.example:8080"})
    assert new.duration_ms == pytest.approx(12.5) and new.trace_id == TRACE
    assert abs(new.received_at.timestamp() - NOW_NS / 1e9) < 1e-3
    assert (old.method, old.path, old.query, old.view_name, old.status_code, old.client_ip) == (
        "POST", "/cart/", "x=1", "cart/", 503, "198.51.100.4")
    assert counted(project) == 2


def test_zipkin_server_spans_are_request_metrics_too(client, project_and_token):
    project, token = project_and_token
    span = {"traceId": TRACE, "id": SPAN, "kind": "SERVER", "name": "get /items",
            "timestamp": NOW_NS // 1000, "duration": 3000,
            "tags": {"http.method": "GET", "http.target": "/items", "http.status_code": "200"}}
    response = client.post("/api/v2/spans", json.dumps([span]), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 202
    row = RequestMetric.objects.get(project=project)
    assert (row.path, row.status_code, row.span_id, row.duration_ms) == ("/items", 200, SPAN, 3.0)


def test_a_request_from_the_tracker_and_from_opentelemetry_counts_once_either_order(
        client, project_and_token):
    project, token = project_and_token
    first = {"trace_id": TRACE, "span_id": "2000000000000001"}
    second = {"trace_id": TRACE, "span_id": "2000000000000002"}
    # The tracker first, then OpenTelemetry; then OpenTelemetry first, then the tracker.
    post_batch(client, token, batch_event(**first))
    post_otlp(client, token, otlp_span(span_id=first["span_id"], attributes=NEW_CONVENTIONS))
    post_otlp(client, token, otlp_span(span_id=second["span_id"], attributes=NEW_CONVENTIONS))
    assert post_batch(client, token, batch_event(**second)).json()["accepted"] == 1
    # An exporter sending the same spans again changes nothing either.
    post_otlp(client, token, otlp_span(span_id=second["span_id"], attributes=NEW_CONVENTIONS))
    rows = {row.span_id: row for row in RequestMetric.objects.filter(project=project)}
    assert len(rows) == 2 and counted(project) == 2
    assert rows[first["span_id"]].view_name == "items-list"  # the tracker's: it came first
    assert rows[second["span_id"]].view_name == "/items/{id}"  # OpenTelemetry's


def test_an_unstorable_optional_value_is_left_out_not_the_request():
    span = SimpleNamespace(kind=2, trace_id=TRACE, span_id=SPAN, start=NOW_NS,
                           end=NOW_NS + 1_000_000,
                           attributes={**NEW_CONVENTIONS, "client.address": "unix:/run/app.sock",
                                       "user_agent.original": "bad\x00agent"})
    [event] = otel_requests.request_events([span])
    assert event.client_ip is None and event.user_agent == "" and event.status_code == 404
    broken = SimpleNamespace(**{**vars(span), "start": 1})  # 1970: no plausible time
    assert otel_requests.request_events([broken]) == []


# --- links between requests, traces and tests ---------------------------------------------------

def test_request_rows_link_to_their_trace_when_it_is_here_in_one_query(client,
                                                                        project_and_token):
    project, token = project_and_token
    here, elsewhere = TRACE, "a" * 32
    post_otlp(client, token, otlp_span(trace_id=here, name="checkout"))  # no http: no request
    post_batch(client, token, *[batch_event(trace_id=here) for _ in range(3)],
               *[batch_event(trace_id=elsewhere) for _ in range(3)], batch_event())
    url = f"/api/tracking/projects/{project.public_id}/requests/"
    with CaptureQueriesContext(connection) as queries:
        rows = client.get(url).json()["results"]
    traces_queries = [q for q in queries.captured_queries if "traces_trace" in q["sql"]]
    assert len(traces_queries) == 1  # for the page, not per row
    assert len(rows) == 7
    assert {row["trace_url"] for row in rows if row["trace_id"] == here} == {
        f"http://testserver/traces/{here}/"}
    assert {row["trace_url"] for row in rows if row["trace_id"] != here} == {None}
    only = client.get(url, {"trace_id": elsewhere.upper()}).json()
    assert only["count"] == 3 and {row["trace_id"] for row in only["results"]} == {elsewhere}
    assert client.get(url, {"trace_id": "nope"}).status_code == 400


def test_a_traces_page_lists_its_requests(client, project_and_token):
    project, token = project_and_token
    post_otlp(client, token, otlp_span(attributes=NEW_CONVENTIONS, name="GET /items/{id}"))
    post_batch(client, token, batch_event(trace_id=TRACE, path="/from-tracker/"))
    page = client.get(f"/traces/{TRACE}/").content.decode()
    assert "Requests and tests of this trace" in page
    assert "GET /items/7 404" in page and "GET /from-tracker/ 200" in page
    assert f"/metrics/{project.public_id}/?trace_id={TRACE}" in page
    # A trace without requests has no such section.
    post_otlp(client, token, otlp_span(trace_id="b" * 32, name="alone"))
    assert "Requests and tests of this trace" not in client.get(f"/traces/{'b' * 32}/").content.decode()
