"""OTLP/HTTP (/v1/traces) and Zipkin v2 (/api/v2/spans), in process: encodings, answers, storage,
reading the trace back. The real exporters against a server process: test_exporters.py."""

import gzip
import json

import pytest
from django.test import Client
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from traces import otel
from traces.models import Span, Trace
from tracking.models import Project

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

TRACE = "5b8efff798038103d269b633813fc60c"
ROOT, CHILD, GRANDCHILD = "eee19b7ec3c1b174", "eee19b7ec3c1b173", "eee19b7ec3c1b172"
T0 = 1_700_000_000_000_000_000  # ns


@pytest.fixture
def token():
    project = Project(name="shop")
    token = project.issue_token()
    project.save()
    return token


@pytest.fixture
def client(settings):
    settings.DASHBOARDS_PUBLIC = True
    return Client()


def span_json(span_id, parent="", name="op", start=0, end=10, **extra):
    span = {"traceId": TRACE, "spanId": span_id, "parentSpanId": parent, "name": name,
            "kind": 2, "startTimeUnixNano": str(T0 + start), "endTimeUnixNano": T0 + end}
    span.update(extra)
    return span


def request_json(*spans, service="checkout"):
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
        "someFutureField": {"ignored": True}}]}


def post_json(client, token, document, **headers):
    body = json.dumps(document).encode()
    if headers.pop("gzip", False):
        body = gzip.compress(body)
        headers["HTTP_CONTENT_ENCODING"] = "gzip"
    return client.post("/v1/traces", body, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token}", **headers)


def post_protobuf(client, token, document, **headers):
    message = ExportTraceServiceRequest()
    json_format.ParseDict(_base64_ids(document), message, ignore_unknown_fields=True)
    return client.post("/v1/traces", message.SerializeToString(),
                       content_type="application/x-protobuf",
                       HTTP_AUTHORIZATION=f"Bearer {token}", **headers)


def _base64_ids(document):
    document = json.loads(json.dumps(document))
    otel._hex_ids_to_base64(document)
    return document


def nested_request():
    return request_json(
        span_json(GRANDCHILD, CHILD, "SELECT movies", 3, 6, kind=3,
                  status={"code": 2, "message": "relation does not exist"},
                  events=[{"timeUnixNano": str(T0 + 5), "name": "exception", "attributes": [
                      {"key": "exception.type", "value": {"stringValue": "ProgrammingError"}}]}]),
        span_json(CHILD, ROOT, "db.query", 2, 8,
                  attributes=[{"key": "db.system", "value": {"stringValue": "postgresql"}},
                              {"key": "db.rows", "value": {"intValue": "3"}},
                              {"key": "cached", "value": {"boolValue": False}},
                              {"key": "ratio", "value": {"doubleValue": 0.5}},
                              {"key": "tags", "value": {"arrayValue": {"values": [
                                  {"stringValue": "a"}, {"intValue": 2}]}}}]),
        span_json(ROOT, "", "GET /movies", 0, 10,
                  links=[{"traceId": "1" * 32, "spanId": "2" * 16}]),
    )


def test_otlp_json_is_stored_and_read_back_as_a_tree(client, token):
    response = post_json(client, token, nested_request())
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == {}
    trace = Trace.objects.get(trace_id=TRACE)
    assert trace.id == otel.row_id(TRACE) < 0
    assert (trace.span_count, trace.error_count, trace.name, trace.service) == (
        3, 1, "GET /movies", "checkout")
    assert trace.duration == 10
    body = client.get(f"/api/trace/{TRACE}/").json()
    assert body["trace_id"] == TRACE and body["url"] == f"/api/trace/{TRACE}/"
    assert body["status"] == "open" and body["missing"] == ["30 s without new spans"]
    root = body["trace"]["children"][0]
    assert (root["span_id"], root["parent_span_id"], root["kind"]) == (ROOT, None, "server")
    assert root["start"] == T0 and root["end"] == T0 + 10
    assert root["service"] == "checkout" and root["resource"] == {"service.name": "checkout"}
    assert root["links"] == [{"trace_id": "1" * 32, "span_id": "2" * 16}]
    child = root["children"][0]
    assert child["parent_span_id"] == ROOT and child["status"] == {"code": "unset", "message": ""}
    assert child["attributes"] == {"db.system": "postgresql", "db.rows": 3, "cached": False,
                                   "ratio": 0.5, "tags": ["a", 2]}
    grandchild = child["children"][0]
    assert grandchild["kind"] == "client"
    assert grandchild["status"] == {"code": "error", "message": "relation does not exist"}
    assert grandchild["events"] == [{"name": "exception", "time": T0 + 5,
                                     "attributes": {"exception.type": "ProgrammingError"}}]


def test_the_page_resolves_a_hex_trace_id(client, token):
    post_json(client, token, nested_request())
    response = client.get(f"/traces/{TRACE}/")
    assert response.status_code == 200 and b"GET /movies" in response.content
    assert client.get(f"/traces/{'f' * 32}/").status_code == 404
    assert client.get(f"/api/trace/{'f' * 32}/").status_code == 404


def test_protobuf_answers_in_protobuf(client, token):
    response = post_protobuf(client, token, nested_request())
    assert response.status_code == 200 and response["Content-Type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert not answer.HasField("partial_success")
    assert Span.objects.filter(trace__trace_id=TRACE).count() == 3


def test_gzip_json(client, token):
    response = post_json(client, token, nested_request(), gzip=True)
    assert response.status_code == 200
    assert Trace.objects.get(trace_id=TRACE).span_count == 3


def test_spans_across_requests_in_any_order_and_a_missing_parent_under_a_placeholder(
        client, token, settings):
    settings.TRACE_OTLP_QUIET_SECONDS = 0
    post_json(client, token, request_json(span_json(GRANDCHILD, CHILD, "SELECT", 3, 6)))
    tree = client.get(f"/api/trace/{TRACE}/").json()
    assert tree["status"] == "open" and tree["missing"] == ["the root span"]
    holder = tree["trace"]["children"][0]
    assert holder["placeholder"] is True and holder["span_id"] == CHILD
    assert holder["children"][0]["span_id"] == GRANDCHILD
    post_json(client, token, request_json(span_json(ROOT, "", "GET /", 0, 10)))
    post_json(client, token, request_json(span_json(CHILD, ROOT, "db", 2, 8)))
    # Sent again (an exporter retrying): stored once.
    post_json(client, token, request_json(span_json(CHILD, ROOT, "db", 2, 8)))
    body = client.get(f"/api/trace/{TRACE}/").json()
    assert body["status"] == "complete" and body["span_count"] == 3 and body["name"] == "GET /"
    root = body["trace"]["children"]
    assert [node["span_id"] for node in root] == [ROOT]
    assert root[0]["children"][0]["children"][0]["span_id"] == GRANDCHILD
    listed = client.get("/api/traces/?status=complete").json()["results"]
    assert [item["trace_id"] for item in listed] == [TRACE]


def test_a_trace_stays_open_for_the_quiet_period(client, token, settings):
    settings.TRACE_OTLP_QUIET_SECONDS = 3600
    post_json(client, token, nested_request())
    assert client.get(f"/api/trace/{TRACE}/").json()["status"] == "open"
    assert client.get("/api/traces/?status=complete").json()["results"] == []
    assert len(client.get("/api/traces/?status=open").json()["results"]) == 1


def test_refused_spans_are_a_partial_success(client, token):
    document = request_json(span_json(ROOT, "", "GET /", 0, 10),
                            span_json("0" * 16, "", "zero id", 0, 10),
                            span_json(CHILD, ROOT, "backwards", 10, 5))
    response = post_json(client, token, document)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "span id must be 8 bytes" in partial["errorMessage"]
    assert "ends before it starts" in partial["errorMessage"]
    assert Trace.objects.get(trace_id=TRACE).span_count == 1
    response = post_protobuf(client, token, document)
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 2


def status_of(response):
    if response["Content-Type"] == "application/x-protobuf":
        return json_format.MessageToDict(status_pb2.Status.FromString(response.content))
    return response.json()


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_undecodable_data_is_400_with_a_status_in_the_request_encoding(client, token, encoding):
    content_type = {"json": "application/json", "protobuf": "application/x-protobuf"}[encoding]
    response = client.post("/v1/traces", b"\xff\x00 not it", content_type=content_type,
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400 and response["Content-Type"] == content_type
    status = status_of(response)
    assert status["code"] == 3 and status["message"]
    bad_gzip = client.post("/v1/traces", b"not gzip", content_type=content_type,
                           HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_CONTENT_ENCODING="gzip")
    assert bad_gzip.status_code == 400 and "gzip" in status_of(bad_gzip)["message"]


def test_json_with_ids_that_are_not_hex_is_400(client, token):
    response = post_json(client, token, request_json(span_json("not-hex-at-all!", "")))
    assert response.status_code == 400 and "hex" in response.json()["message"]


def test_other_content_types_are_415(client, token):
    response = client.post("/v1/traces", b"x", content_type="text/plain",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 415 and response.json()["message"]


def test_missing_or_wrong_token(client, token):
    document = nested_request()
    response = client.post("/v1/traces", json.dumps(document), content_type="application/json")
    assert response.status_code == 401 and response.json()["code"] == 16
    response = post_json(client, "rat_wrong", document)
    assert response.status_code == 403 and response.json()["code"] == 7
    response = post_protobuf(client, "rat_wrong", document)
    assert response.status_code == 403
    assert status_pb2.Status.FromString(response.content).code == 7
    assert not Trace.objects.exists()


def test_over_the_body_limit_is_413_a_gzip_bomb_too(client, token, settings):
    settings.TRACE_OTLP_MAX_BODY_BYTES = 12_000
    big = request_json(*[span_json(f"{i + 1:016x}", "", "x" * 50) for i in range(100)])
    assert post_json(client, token, big).status_code == 413
    bomb = gzip.compress(b"{" + b" " * 10_000_000 + b"}")
    assert len(bomb) < 12_000
    response = client.post("/v1/traces", bomb, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413 and response.json()["code"] == 8
    assert not Trace.objects.exists()


def test_only_post(client, token):
    response = client.get("/v1/traces", HTTP_AUTHORIZATION=f"Bearer {token}",
                          content_type="application/json")
    assert response.status_code == 405 and response["Allow"] == "POST"


def test_filters(client, token):
    post_json(client, token, nested_request())
    other = "6" * 32
    post_json(client, token, {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "billing"}}]}, "scopeSpans": [{
            "spans": [dict(span_json(ROOT, "", "charge"), traceId=other)]}]}]})

    def ids(query):
        response = client.get(f"/api/traces/?{query}")
        assert response.status_code == 200, response.content
        return sorted(item["trace_id"] for item in response.json()["results"])

    assert ids("error=true") == [TRACE]
    assert ids("error=false") == [other]
    assert ids("service=billing") == [other]
    assert ids("operation=SELECT+movies") == [TRACE]
    assert ids("attribute=db.system:postgresql") == [TRACE]
    assert ids("attribute=db.rows:3&attribute=db.system:postgresql") == [TRACE]
    assert ids("attribute=db.rows:4") == []
    assert client.get("/api/traces/?attribute=novalue").status_code == 400


# --- Zipkin v2 ----------------------------------------------------------------------------------

def zipkin_span(span_id, parent=None, name="get", **extra):
    span = {"traceId": TRACE[16:], "id": span_id, "name": name, "timestamp": 1_700_000_000_000_000,
            "duration": 1500, "kind": "SERVER", "localEndpoint": {"serviceName": "frontend"},
            "tags": {"http.method": "GET"}, "annotations": [
                {"timestamp": 1_700_000_000_000_500, "value": "cache miss"}]}
    if parent:
        span["parentId"] = parent
    span.update(extra)
    return span


def test_zipkin_v2_json_is_202_and_stored(client, token):
    spans = [zipkin_span(CHILD, ROOT, "db", tags={"error": "timeout"}), zipkin_span(ROOT)]
    response = client.post("/api/v2/spans", json.dumps(spans), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 202 and response.content == b""
    trace_id = "0" * 16 + TRACE[16:]  # a 64-bit trace id, padded
    body = client.get(f"/api/trace/{trace_id}/").json()
    assert body["error_count"] == 1 and body["service"] == "frontend"
    root = body["trace"]["children"][0]
    assert (root["start"], root["end"]) == (1_700_000_000_000_000_000, 1_700_000_000_001_500_000)
    assert root["attributes"] == {"http.method": "GET"}
    assert root["events"] == [{"name": "cache miss", "time": 1_700_000_000_000_500_000}]
    assert root["children"][0]["status"] == {"code": "error", "message": "timeout"}


def test_zipkin_errors(client, token):
    def post(body, **headers):
        return client.post("/api/v2/spans", body, content_type=headers.pop("ct", "application/json"),
                           **headers)

    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert post(json.dumps([zipkin_span(ROOT)])).status_code == 401
    assert post(json.dumps([zipkin_span(ROOT)]), HTTP_AUTHORIZATION="Bearer no").status_code == 403
    assert post("{}", **auth).status_code == 400
    assert post("[{\"id\": 1}]", **auth).status_code == 400
    assert post("x", ct="application/x-thrift", **auth).status_code == 415


def test_an_overloaded_process_answers_503_with_retry_after(settings):
    import asyncio

    from traces import otlp

    settings.TRACE_OTLP_MAX_WAITING = 0

    async def full():
        turns = otlp.Turns()
        semaphore = turns.take()
        for _ in range(turns.size()):
            await semaphore.acquire()
        with pytest.raises(otlp.Refused) as refused:
            turns.take()
        return refused.value

    refused = asyncio.run(full())
    assert refused.status == 503 and refused.retry_after >= 1
    response = otlp._otlp_refusal("application/x-protobuf", refused)
    assert response.status_code == 503 and int(response["Retry-After"]) >= 1
    assert status_pb2.Status.FromString(response.content).code == 14


# --- the stored status, TRACE_MAX_SPANS, the project --------------------------------------------

def test_the_job_stores_complete_once_the_quiet_period_passed_and_a_new_span_reopens(
        client, token, settings):
    from notifications.jobs import run_job

    settings.TRACE_OTLP_QUIET_SECONDS = 0
    post_json(client, token, nested_request())
    rootless = "0af7651916cd43dd8448eb211c80319c"
    post_json(client, token, request_json({**span_json(CHILD, ROOT, "orphan"),
                                           "traceId": rootless}))
    trace = Trace.objects.get(trace_id=TRACE)
    assert trace.status == "open" and trace.current_status == "complete"
    # Meanwhile reads compute it: `completed` is when the quiet period ended.
    body = client.get(f"/api/trace/{TRACE}/").json()
    assert body["status"] == "complete" and body["completed"] is not None
    record = run_job("complete_quiet_traces")
    assert record.last_outcome == "ok"
    assert record.last_detail == "1 OTLP/Zipkin trace(s) marked complete"
    trace.refresh_from_db()
    assert trace.status == "complete" and trace.completed == trace.updated
    # No root span: not complete, whatever the time.
    assert Trace.objects.get(trace_id=rootless).status == "open"
    assert [item["trace_id"] for item in
            client.get("/api/traces/?status=complete").json()["results"]] == [TRACE]
    assert run_job("complete_quiet_traces").last_detail.startswith("0 ")
    # A span arriving later opens it again.
    settings.TRACE_OTLP_QUIET_SECONDS = 3600
    post_json(client, token, request_json(span_json("eee19b7ec3c1b171", ROOT, "late", 4, 5)))
    trace.refresh_from_db()
    assert (trace.status, trace.completed, trace.span_count) == ("open", None, 4)
    listed = client.get("/api/traces/?status=open").json()["results"]
    assert {item["trace_id"] for item in listed} == {TRACE, rootless}
    assert run_job("complete_quiet_traces").last_detail.startswith("0 ")


def test_spans_past_trace_max_spans_are_refused_and_the_trace_says_so(client, token, settings):
    settings.TRACE_MAX_SPANS = 2
    response = post_protobuf(client, token, nested_request())
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert response.status_code == 200 and answer.partial_success.rejected_spans == 1
    assert "TRACE_MAX_SPANS (2 spans per trace)" in answer.partial_success.error_message
    assert TRACE in answer.partial_success.error_message
    trace = Trace.objects.get(trace_id=TRACE)
    assert trace.span_count == Span.objects.filter(trace=trace).count() == 2
    assert trace.problems == [
        "spans past TRACE_MAX_SPANS (2 per trace) were refused; the exporter was told how many"]
    # Spans already stored, sent again, are accepted (stored once); new ones still refused.
    stored = list(Span.objects.filter(trace=trace).values_list("span_id", flat=True))
    again = request_json(*[span for span in nested_request()["resourceSpans"][0]["scopeSpans"][0]
                           ["spans"] if span["spanId"] in stored])
    assert post_json(client, token, again).json() == {}
    partial = post_json(client, token, nested_request()).json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    page = client.get(f"/traces/{TRACE}/")
    assert b"Not all stored:" in page.content and b"TRACE_MAX_SPANS" in page.content
    # A trace of its own is not concerned.
    other = {**span_json(ROOT, "", "GET /"), "traceId": "0af7651916cd43dd8448eb211c80319c"}
    assert post_json(client, token, request_json(other)).json() == {}


def test_a_trace_keeps_the_project_of_the_token_and_the_list_filters_by_it(client, token):
    other = Project(name="billing")
    other_token = other.issue_token()
    other.save()
    shop = Project.objects.get(name="shop")
    post_json(client, token, nested_request())
    billing_trace = "0af7651916cd43dd8448eb211c80319c"
    post_json(client, other_token, request_json({**span_json(ROOT, "", "POST /invoices"),
                                                 "traceId": billing_trace}))
    assert Trace.objects.get(trace_id=TRACE).project == shop.public_id

    def listed(query):
        response = client.get(f"/api/traces/{query}")
        assert response.status_code == 200, response.content
        return [item["trace_id"] for item in response.json()["results"]]

    assert listed(f"?project={shop.public_id}") == [TRACE]
    assert listed(f"?project={other.public_id}") == [billing_trace]
    assert listed(f"?project={other.public_id}&name=GET%20/movies") == []
    assert sorted(listed("")) == sorted([TRACE, billing_trace])
    body = client.get(f"/api/trace/{TRACE}/").json()
    assert body["project"] == str(shop.public_id)
    response = client.get("/api/traces/?project=shop")
    assert response.status_code == 400 and "project" in response.json()["errors"]


def test_a_trace_id_whose_row_is_taken_by_another_is_refused(client, token):
    post_json(client, token, nested_request())
    twin = "6" + TRACE[1:]  # the same low 64 bits: the same row id
    assert otel.row_id(twin) == otel.row_id(TRACE)
    both = request_json(span_json(ROOT, "", "GET /"), {**span_json(ROOT, "", "GET /"),
                                                       "traceId": twin})
    partial = post_json(client, token, both).json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "collision" in partial["errorMessage"]
    assert Trace.objects.get(trace_id=TRACE).span_count == 3
    assert not Trace.objects.filter(trace_id=twin).exists()


def test_before_its_root_arrives_a_trace_is_named_after_its_earliest_span(client, token):
    post_json(client, token, request_json(span_json(GRANDCHILD, CHILD, "SELECT", 3, 6)))
    post_json(client, token, request_json(span_json("eee19b7ec3c1b171", CHILD, "later", 7, 8)))
    assert Trace.objects.get(trace_id=TRACE).name == "SELECT"
    post_json(client, token, request_json(span_json(CHILD, ROOT, "db", 2, 8), service="db"))
    assert (Trace.objects.get(trace_id=TRACE).name, Trace.objects.get(trace_id=TRACE).service) \
        == ("db", "db")
    post_json(client, token, request_json(span_json(ROOT, "", "GET /", 1, 10)))
    post_json(client, token, request_json(span_json("eee19b7ec3c1b170", ROOT, "first", 0, 1)))
    trace = Trace.objects.get(trace_id=TRACE)
    assert (trace.name, trace.service, trace.span_count) == ("GET /", "checkout", 5)
def test_known_services_for_the_pickers(client, token):
    assert client.get("/api/traces/services/").json() == {"services": []}
    post_json(client, token, request_json(span_json(ROOT, name="a"), service="web"))
    other = {**span_json(CHILD, name="b"), "traceId": "0af7651916cd43dd8448eb211c80319c"}
    post_json(client, token, request_json(other, service="cart"))
    post_json(client, token, request_json(span_json(GRANDCHILD, parent=ROOT, name="c"),
                                          service="db"))
    # "db" is no trace's service (the root is web's) but one of its spans'.
    assert client.get("/api/traces/services/").json() == {"services": ["cart", "db", "web"]}
    schema = client.get("/api/schema/?format=json").json()
    assert "/api/traces/services/" in schema["paths"]


def test_the_migration_offers_the_services_already_stored(client, token):
    import importlib
    from types import SimpleNamespace

    from django.apps import apps
    from django.db import connection

    from traces.models import Service
    from traces.tests.helpers import store_trace, trace_end, trace_start

    post_json(client, token, request_json(span_json(ROOT, name="a"), service="web"))
    store_trace(7, [{**trace_start(1), "service": "api"}, trace_end(2)])
    assert client.get("/api/traces/services/").json() == {"services": ["api", "web"]}
    Service.objects.all().delete()  # as before the migration
    migration = importlib.import_module("traces.migrations.0008_service_names")
    migration.services_of_stored_spans(apps, SimpleNamespace(connection=connection))
    assert client.get("/api/traces/services/").json() == {"services": ["api", "web"]}


def test_a_project_token_rotated_in_this_process_is_refused_at_once(client, token):
    """The endpoint keeps a project it found by its token PROJECT_TOKEN_CACHE_SECONDS; rotating
    the token in this process forgets it at once."""
    from tracking.services import rotate_token

    assert post_json(client, token, nested_request()).status_code == 200
    new = rotate_token(Project.objects.get())
    assert post_json(client, token, nested_request()).status_code == 403
    assert post_json(client, new, nested_request()).status_code == 200


def test_a_project_token_rotated_elsewhere_is_refused_once_its_time_is_up(client, token,
                                                                         monkeypatch):
    from django.db import connection

    from traces import otlp

    clock = [1000.0]
    monkeypatch.setattr(otlp.found_projects, "clock", lambda: clock[0])
    assert post_json(client, token, nested_request()).status_code == 200
    with connection.cursor() as cursor:  # as another process would: no signal here
        cursor.execute(f"UPDATE {Project._meta.db_table} SET token_digest = 'rotated'")
    clock[0] += 9
    assert post_json(client, token, nested_request()).status_code == 200
    clock[0] += 2  # past PROJECT_TOKEN_CACHE_SECONDS (10)
    assert post_json(client, token, nested_request()).status_code == 403
    assert otlp.found_projects.found == {}  # unknown tokens are never kept
