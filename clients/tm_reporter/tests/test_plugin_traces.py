"""Tests to traces, end to end: the pytest plugin runs a real pytest suite (pytester, in a
process of its own) against a live server; each test runs in a trace of its own. A test makes
HTTP requests to a Flask app tracked by our tracker, through requests instrumented by
OpenTelemetry (the SDK's OTLP exporter sends the test's spans), and starts a subprocess. Then
the run page, the trace's page and the metrics dashboard link to each other, in Chromium."""

import re

import pytest
import requests

from tm_api.models import TestResult
from traces.models import Span, Trace
from tracking.models import RequestMetric

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration

CONFTEST = """
import os

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "shop-tests"}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
    endpoint=os.environ["SUITE_OTLP_URL"],
    headers={"Authorization": "Bearer " + os.environ["SUITE_OTLP_TOKEN"]})))
trace.set_tracer_provider(provider)
RequestsInstrumentor().instrument()
"""

SUITE = """
import os
import subprocess
import sys
import urllib.request

import requests
from opentelemetry import trace

SHOP = os.environ["SUITE_SHOP_URL"]


def test_buys_a_thing(tm_traceparent):
    # Its own span, and an instrumented HTTP client: both in the test's trace.
    with trace.get_tracer("suite").start_as_current_span("checkout"):
        assert requests.get(SHOP + "/orders/1", timeout=10).status_code == 200
    trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
    assert tm_traceparent.split("-")[1] == trace_id
    # A subprocess gets it in its environment.
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['TRACEPARENT'])"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == tm_traceparent == os.environ["TM_TRACEPARENT"]


def test_plain_client_adds_the_header_itself(tm_traceparent):
    request = urllib.request.Request(SHOP + "/orders/2", headers={"traceparent": tm_traceparent})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def test_fails_after_a_request():
    requests.get(SHOP + "/orders/3", timeout=10)
    assert False, "the shop said no"
"""


@pytest.fixture
def shop(server_factory, tracked_flask_app):
    """A Flask shop tracked into a real server: GET /orders/<n>."""
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True")
    project, token, base, tracker = tracked_flask_app(server, "Shop under test")
    return server, project, token, base, tracker


def test_each_test_runs_in_its_trace_and_the_pages_link_it(pytester, shop, monkeypatch, page):
    server, project, token, shop_url, tracker = shop
    monkeypatch.setenv("SUITE_SHOP_URL", shop_url)
    monkeypatch.setenv("SUITE_OTLP_URL", f"{server.url}/v1/traces")
    monkeypatch.setenv("SUITE_OTLP_TOKEN", token)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_shop=SUITE)
    result = pytester.runpytest_subprocess(
        "-p", "no:django", "-p", "no:cacheprovider", "--tm-url", server.url,
        "--tm-machine", "shop-ci")
    result.assert_outcomes(passed=2, failed=1)
    tracker.sender.flush(timeout=10)

    results = {r.test.file_name: r for r in TestResult.objects.select_related("test")}
    assert set(results) == {"test_buys_a_thing", "test_plain_client_adds_the_header_itself",
                            "test_fails_after_a_request"}
    trace_ids = {name: r.trace_id for name, r in results.items()}
    assert all(re.fullmatch("[0-9a-f]{32}", t) for t in trace_ids.values())
    assert len(set(trace_ids.values())) == 3  # one trace per test
    # Each test's request was tracked with its trace id (from the traceparent the instrumented
    # client, or the test itself, sent).
    rows = {row.path: row.trace_id for row in RequestMetric.objects.filter(project=project)}
    assert rows == {"/orders/1": trace_ids["test_buys_a_thing"],
                    "/orders/2": trace_ids["test_plain_client_adds_the_header_itself"],
                    "/orders/3": trace_ids["test_fails_after_a_request"]}
    # The test's span (the root), its own span and the client span form one trace here.
    bought = Trace.objects.get(trace_id=trace_ids["test_buys_a_thing"])
    spans = {span.name: span for span in Span.objects.filter(trace=bought)}
    root = spans["test_shop.py::test_buys_a_thing"]
    assert root.parent_span_id == "" and root.attributes["test.case.result.status"] == "pass"
    assert spans["checkout"].parent_span_id == root.span_id
    assert bought.name == "test_shop.py::test_buys_a_thing"
    failed = Trace.objects.get(trace_id=trace_ids["test_fails_after_a_request"])
    assert failed.error_count == 1  # the failing test's span has the error status
    # The reporter's own calls to the server (instrumented requests too) made no traces: every
    # trace stored is a test's.
    assert set(Trace.objects.values_list("trace_id", flat=True)) == set(trace_ids.values())

    # The test detail API lists what carries its trace id.
    bought_test = results["test_buys_a_thing"].test
    detail = requests.get(f"{server.url}/tm_api/test/{bought_test.pk}", timeout=10).json()
    assert detail["trace_id"] == trace_ids["test_buys_a_thing"]
    assert [link["kind"] for link in detail["links"]] == ["trace", "requests"]
    assert detail["links"][0]["url"] == f"{server.url}/traces/{bought.trace_id}/"

    # In Chromium: the run page -> the test's trace -> its request on the dashboard -> the trace.
    page.goto(f"{server.url}/machines/runs/{bought_test.master_scenario.run_id}/")
    links = page.locator(f"tr.tm-links[data-links-of='{bought_test.pk}']")
    assert links.locator(".trace-link-requests a").inner_text() == "GET /orders/1 200 · " + (
        links.locator(".trace-link-requests a").inner_text().split("· ")[1])
    # The test that sent the header itself: its span was exported all the same (the suite
    # has an SDK), and its request carries its trace id.
    plain = results["test_plain_client_adds_the_header_itself"].test
    plain_links = page.locator(f"tr.tm-links[data-links-of='{plain.pk}'] .trace-link")
    assert plain_links.count() == 2
    assert "GET /orders/2 200" in plain_links.nth(1).inner_text()
    links.locator(".trace-link-trace a").click()
    page.wait_for_url(f"{server.url}/traces/{bought.trace_id}/")
    related = page.locator("#trace-related")
    assert "test_buys_a_thing (shop-ci)" in related.inner_text()
    related.locator(".trace-link-requests a").click()
    page.wait_for_url(re.compile(rf".*/metrics/{project.public_id}/\?trace_id={bought.trace_id}$"))
    assert page.locator("#request-filters [name=trace_id]").input_value() == bought.trace_id
    row = page.locator("#requests tbody tr")
    row.first.wait_for()
    assert row.count() == 1 and "/orders/1" in row.inner_text()
    assert row.locator("td.trace a").get_attribute("href") == (
        f"{server.url}/traces/{bought.trace_id}/")
    # The slowest requests of the window (all three here) link to the traces sent here.
    slowest = page.locator("#slowest-requests tbody tr")
    assert slowest.count() == 3
    assert page.locator("#slowest-requests td.trace a").count() == 3
    slowest.locator("td.trace a").first.click()
    page.wait_for_url(re.compile(r".*/traces/[0-9a-f]{32}/$"))
    # The test's own page (its history across runs) lists the same links under its result.
    page.goto(f"{server.url}/machines/tests/history/?test={bought_test.pk}")
    history_links = page.locator(f"tr.tm-links[data-links-of='{bought_test.pk}']")
    assert history_links.locator(".trace-link-trace a").get_attribute("href") == (
        f"/traces/{bought.trace_id}/")
    assert "GET /orders/1 200" in history_links.locator(".trace-link-requests a").inner_text()


API_ONLY_SUITE = """
import os

import pytest
from opentelemetry import propagate, trace


@pytest.mark.parametrize("n", range(4))
def test_propagates_without_an_sdk(n, tm_traceparent):
    # opentelemetry-api without an SDK: the test's context still carries the plugin's ids, so
    # OpenTelemetry's propagator (what instrumented clients call) sends them.
    carrier = {}
    propagate.inject(carrier)
    assert carrier["traceparent"] == tm_traceparent == os.environ["TRACEPARENT"]
    assert not trace.get_current_span().is_recording()
"""


def test_trace_ids_come_from_xdist_workers_and_without_an_sdk(pytester, server_factory):
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True")
    pytester.makepyfile(test_api_only=API_ONLY_SUITE)
    result = pytester.runpytest_subprocess(
        "-p", "no:django", "-p", "no:cacheprovider", "-n", "2", "--tm-url", server.url,
        "--tm-machine", "xdist-ci")
    result.assert_outcomes(passed=4)
    trace_ids = set(TestResult.objects.values_list("trace_id", flat=True))
    assert len(trace_ids) == 4 and all(re.fullmatch("[0-9a-f]{32}", t) for t in trace_ids)


def test_no_trace_context_with_tm_no_trace(pytester, server_factory):
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True", DASHBOARDS_PUBLIC="True")
    pytester.makepyfile(test_plain="""
import os

def test_no_context():
    assert "TM_TRACEPARENT" not in os.environ
""")
    result = pytester.runpytest_subprocess(
        "-p", "no:django", "-p", "no:cacheprovider", "--tm-url", server.url,
        "--tm-machine", "no-trace", "--tm-no-trace")
    result.assert_outcomes(passed=1)
    assert list(TestResult.objects.values_list("trace_id", flat=True)) in ([], [None])
