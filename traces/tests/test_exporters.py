"""The real OpenTelemetry exporters against a real server process: the SDK with the OTLP/HTTP
protobuf exporter (plain and gzip), the Zipkin JSON exporter, and OTLP/JSON with gzip."""

import gzip
import json

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracking.models import Project

pytestmark = [pytest.mark.integration]


@pytest.fixture
def token(project_token):
    return project_token


class Recording:
    """An exporter that remembers what the wrapped one answered."""

    def __init__(self, exporter):
        self.exporter, self.results = exporter, []

    def export(self, spans):
        result = self.exporter.export(spans)
        self.results.append(result)
        return result

    def shutdown(self):
        self.exporter.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def record_nested_trace(exporter, service="checkout"):
    """GET /movies > db.query (attributes, an event) > SELECT movies (fails). The simple
    processor exports each span as it ends: children before their parents, one request each."""
    recording = Recording(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(recording))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("GET /movies", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.method", "GET")
        with tracer.start_as_current_span("db.query", kind=SpanKind.CLIENT) as query:
            query.set_attribute("db.system", "postgresql")
            query.set_attribute("db.rows", 3)
            query.add_event("cache miss", {"cache.key": "movies"})
            with tracer.start_as_current_span("SELECT movies") as select:
                try:
                    raise ValueError("relation movies does not exist")
                except ValueError as error:
                    select.record_exception(error)
                    select.set_status(Status(StatusCode.ERROR, str(error)))
    provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")
    return recording.results, trace_id


def check_nested_trace(server, trace_id, service="checkout", zipkin=False):
    """Zipkin has tags, not attributes: strings, with the exporter's own (otel.scope.name...)
    beside the span's."""
    body = requests.get(f"{server.url}/api/trace/{trace_id}/", timeout=5).json()
    assert body["trace_id"] == trace_id and body["span_count"] == 3 and body["error_count"] == 1
    assert body["name"] == "GET /movies" and body["service"] == service
    (root,) = body["trace"]["children"]
    assert root["name"] == "GET /movies" and root["kind"] == "server"
    assert root["parent_span_id"] is None and root["attributes"]["http.method"] == "GET"
    (query,) = root["children"]
    assert query["parent_span_id"] == root["span_id"] and query["kind"] == "client"
    rows = "3" if zipkin else 3
    assert {key: query["attributes"][key] for key in ("db.system", "db.rows")} == {
        "db.system": "postgresql", "db.rows": rows}
    assert zipkin or len(query["attributes"]) == 2
    assert [event["name"] for event in query["events"]] == ["cache miss"]
    (select,) = query["children"]
    assert select["status"]["code"] == "error"
    assert "relation movies does not exist" in select["status"]["message"]
    return select


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_the_otlp_http_exporter(server_factory, token, compression):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", compression=compression,
                                headers={"Authorization": f"Bearer {token}"})
    results, trace_id = record_nested_trace(exporter)
    assert results == [SpanExportResult.SUCCESS] * 3
    select = check_nested_trace(server, trace_id)
    (exception,) = select["events"]
    assert exception["name"] == "exception"
    assert exception["attributes"]["exception.type"] == "ValueError"
    assert exception["attributes"]["exception.message"] == "relation movies does not exist"
    listed = requests.get(f"{server.url}/api/traces/?error=true&service=checkout",
                          timeout=5).json()["results"]
    assert [item["trace_id"] for item in listed] == [trace_id]
    page = requests.get(f"{server.url}/traces/{trace_id}/", timeout=5)
    assert page.status_code == 200 and "GET /movies" in page.text


def test_the_otlp_http_exporter_with_a_wrong_token_fails(server_factory, token):
    server = server_factory()
    exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces",
                                headers={"Authorization": "Bearer rat_not-it"})
    results, _ = record_nested_trace(exporter)
    assert results == [SpanExportResult.FAILURE] * 3
    response = requests.post(f"{server.url}/v1/traces", data=b"",
                             headers={"Content-Type": "application/x-protobuf"}, timeout=5)
    assert response.status_code == 401


def test_the_zipkin_json_exporter(server_factory, token):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    exporter = ZipkinExporter(endpoint=f"{server.url}/api/v2/spans", session=session)
    results, trace_id = record_nested_trace(exporter, service="frontend")
    assert results == [SpanExportResult.SUCCESS] * 3
    select = check_nested_trace(server, trace_id, service="frontend", zipkin=True)
    assert [event["name"] for event in select["events"]] == ["exception"]


def test_otlp_json_with_gzip(server_factory, token):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    document = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
        "scopeSpans": [{"spans": [
            {"traceId": trace_id, "spanId": "b7ad6b7169203331", "name": "add item",
             "kind": "SPAN_KIND_SERVER", "startTimeUnixNano": "1700000000000000000",
             "endTimeUnixNano": 1700000000500000000, "status": {"code": 2, "message": "boom"},
             "attributes": [{"key": "item.count", "value": {"intValue": "2"}}],
             "droppedAttributesCount": 0, "unknownField": [1, 2]}]}]}]}
    response = requests.post(
        f"{server.url}/v1/traces", data=gzip.compress(json.dumps(document).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip",
                 "Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 200 and response.json() == {}
    body = requests.get(f"{server.url}/api/trace/{trace_id}/", timeout=5).json()
    (span,) = body["trace"]["children"]
    assert span["kind"] == "server" and span["attributes"] == {"item.count": 2}
    assert span["status"] == {"code": "error", "message": "boom"}
    assert span["end"] - span["start"] == 500_000_000


DJANGO_APP = '''
"""A small Django app of its own, instrumented with opentelemetry-instrumentation-django, its
spans exported over OTLP/HTTP to the server under test."""
import sys

import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path

settings.configure(DEBUG=False, ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="x",
                   MIDDLEWARE=[], INSTALLED_APPS=[], LOGGING_CONFIG=None)

from opentelemetry import trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.instrumentation.django import DjangoInstrumentor  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

provider = TracerProvider(resource=Resource.create({"service.name": "movies-app"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
    endpoint=sys.argv[1] + "/v1/traces", headers={"Authorization": "Bearer " + sys.argv[2]})))
trace.set_tracer_provider(provider)
DjangoInstrumentor().instrument()
tracer = trace.get_tracer("movies")


def movies(request):
    with tracer.start_as_current_span("load movies"):
        return HttpResponse("ok")


def broken(request):
    raise ValueError("the database is gone")


urlpatterns = [path("movies/", movies), path("broken/", broken)]
django.setup()

from django.test import Client  # noqa: E402

client = Client(raise_request_exception=False)
assert client.get("/movies/").status_code == 200
assert client.get("/broken/").status_code == 500
provider.shutdown()
'''


def test_a_django_app_instrumented_with_opentelemetry(server_factory, token, tmp_path):
    import subprocess
    import sys

    server = server_factory(DASHBOARDS_PUBLIC="True")
    script = tmp_path / "movies_app.py"
    script.write_text(DJANGO_APP)
    subprocess.run([sys.executable, str(script), server.url, token], check=True, timeout=60,
                   cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    traces = requests.get(f"{server.url}/api/traces/?service=movies-app", timeout=5).json()
    assert traces["count"] == 2
    failed = requests.get(f"{server.url}/api/traces/?service=movies-app&error=true",
                          timeout=5).json()["results"]
    assert len(failed) == 1
    body = requests.get(f"{server.url}{failed[0]['url']}", timeout=5).json()
    (request_span,) = body["trace"]["children"]
    assert request_span["kind"] == "server" and request_span["status"]["code"] == "error"
    assert request_span["attributes"].get("http.response.status_code",
                                          request_span["attributes"].get("http.status_code")) == 500
    assert any(event["name"] == "exception" for event in request_span["events"])
    (ok,) = requests.get(f"{server.url}/api/traces/?service=movies-app&error=false",
                         timeout=5).json()["results"]
    tree = requests.get(f"{server.url}{ok['url']}", timeout=5).json()["trace"]
    assert tree["children"][0]["children"][0]["name"] == "load movies"


def test_trace_max_spans_with_the_otlp_exporter(server_factory, token):
    """The SDK's exporter sends each span as it ends (children first): the third span of a trace
    past TRACE_MAX_SPANS=2 is refused (a partial success: the SDK logs it, the export
    succeeded), the trace keeps two spans and says why. The same spans in one batch, encoded by
    the SDK's own encoder: rejected_spans counts the refused one."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    server = server_factory(DASHBOARDS_PUBLIC="True", TRACE_MAX_SPANS="2")
    exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces",
                                headers={"Authorization": f"Bearer {token}"})
    results, trace_id = record_nested_trace(exporter)
    assert results == [SpanExportResult.SUCCESS] * 3
    body = requests.get(f"{server.url}/api/trace/{trace_id}/", timeout=5).json()
    # The root was refused: the trace is named after its earliest span.
    assert body["span_count"] == 2 and body["name"] == "db.query"
    assert "TRACE_MAX_SPANS (2 per trace)" in body["problems"][0]

    memory = InMemorySpanExporter()
    _, trace_id = record_nested_trace(memory)
    response = requests.post(
        f"{server.url}/v1/traces", data=encode_spans(memory.get_finished_spans())
        .SerializeToString(), headers={"Content-Type": "application/x-protobuf",
                                       "Authorization": f"Bearer {token}"}, timeout=5)
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert response.status_code == 200 and answer.partial_success.rejected_spans == 1
    assert f"trace(s) {trace_id} reached TRACE_MAX_SPANS" in answer.partial_success.error_message
    body = requests.get(f"{server.url}/api/trace/{trace_id}/", timeout=5).json()
    assert body["span_count"] == 2 and body["problems"]


def test_traces_keep_the_project_of_the_exporters_token(server_factory, token):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    other = Project(name="billing")
    other_token = other.issue_token()
    other.save()
    shop = Project.objects.get(name="shop")
    ids = {}
    for project, secret in ((shop, token), (other, other_token)):
        exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces",
                                    headers={"Authorization": f"Bearer {secret}"})
        results, ids[project.name] = record_nested_trace(exporter, service=project.name)
        assert results == [SpanExportResult.SUCCESS] * 3
    for project in (shop, other):
        listed = requests.get(f"{server.url}/api/traces/?project={project.public_id}",
                              timeout=5).json()["results"]
        assert [(item["trace_id"], item["project"]) for item in listed] == [
            (ids[project.name], str(project.public_id))]
