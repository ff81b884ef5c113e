"""`manage.py demo_links` (`make demo-links`) end to end: a real server, the real Flask shop of
examples/linked_demo/ exporting over OTLP/HTTP and tracking its requests, its real pytest suite
reporting through the tm_reporter plugin, and the pages in Chromium, clicked from the run to the
failing test's trace to its request."""

import io
import re

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from tm_api.models import Test, TestResult
from traces.models import Span
from tracking.models import Project, RequestMetric

pytestmark = pytest.mark.integration


def test_the_demo_links_a_failing_test_to_its_trace_and_its_requests(server_factory, page):
    server = server_factory(DASHBOARDS_PUBLIC="True")  # DEBUG off: machine and project tokens
    out = io.StringIO()
    call_command("demo_links", url=server.url, stdout=out, stderr=io.StringIO())
    printed = out.getvalue()

    # The run has the failing test, with the trace it ran in.
    run_url = re.search(r"Run: +(\S+)", printed).group(1)
    run_id = int(re.search(r"/machines/runs/(\d+)/$", run_url).group(1))
    tests = {t.file_name: t for t in Test.objects.filter(master_scenario__run_id=run_id)}
    assert {name: t.status for name, t in tests.items()} == {
        "test_catalogue_lists_products": "passed", "test_product_page": "passed",
        "test_search_finds_shoes": "passed", "test_checkout": "passed",
        "test_empty_cart_is_refused": "failed"}
    failing = TestResult.objects.get(test=tests["test_empty_cart_is_refused"])
    assert "empty cart: 500" in failing.message
    trace_id = failing.trace_id
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)

    # Its trace: the test's span, its HTTP call, and the shop's SERVER span with the span that
    # raised, one tree.
    spans = {s.name: s for s in Span.objects.filter(trace__trace_id=trace_id)}
    raised = spans["price the cart"]
    assert (raised.service, raised.status_code) == ("linked-demo-shop", Span.ERROR)
    assert "ZeroDivisionError" in raised.status_message
    server_span = spans["POST /checkout"]
    assert (server_span.service, server_span.kind) == ("linked-demo-shop", 2)
    assert raised.parent_span_id == server_span.span_id
    test_span = spans["tests/test_shop.py::test_empty_cart_is_refused"]
    assert (test_span.service, test_span.parent_span_id) == ("linked-demo-tests", "")

    # The shop's request, sent by the tracker and by OpenTelemetry, counted once: six calls of
    # the suite, six requests, the failing one with the SERVER span's ids.
    log = server.output()
    assert re.search(r"POST /api/tracking/ingest/ \S* ?20[02]", log), log[-3000:]
    assert re.search(r"POST /v1/traces \S* ?200", log), log[-3000:]
    project = Project.objects.get(name="Linked demo shop")
    assert RequestMetric.objects.filter(project=project).count() == 6
    # Named alike by both (the shop names its endpoints after their routes): one row per view.
    assert set(RequestMetric.objects.filter(project=project).values_list(
        "view_name", flat=True)) == {"/", "/products/<int:product_id>", "/search", "/checkout"}
    request = RequestMetric.objects.get(project=project, trace_id=trace_id)
    assert (request.method, request.path, request.status_code) == ("POST", "/checkout", 500)
    assert request.span_id == server_span.span_id

    # The slow search is the dashboard's slowest request.
    slowest = requests.get(
        f"{server.url}/api/tracking/projects/{project.public_id}/requests/",
        params={"sort": "-duration"}, timeout=10).json()["results"][0]
    assert (slowest["path"], slowest["status_code"]) == ("/search", 200)
    assert slowest["duration_ms"] >= 700
    assert f"/metrics/{project.public_id}/?sort=-duration" in printed
    assert f"/traces/{trace_id}/" in printed

    # In the browser: run page -> the failing test's trace -> its request on the dashboard.
    page.goto(run_url)
    links = page.locator(f"tr.tm-links[data-links-of='{tests['test_empty_cart_is_refused'].pk}']")
    links.locator(".trace-link-trace a").click()
    page.wait_for_url(f"**/traces/{trace_id}/")
    page.wait_for_selector("#waterfall[data-loaded]")
    error_row = page.locator(".wf-row:has(.wf-name:text-is('price the cart'))")
    assert error_row.locator(".wf-error-mark").count() == 1
    page.locator("#trace-related .trace-link-requests a").click()
    page.wait_for_url(f"**/metrics/{project.public_id}/?trace_id={trace_id}")
    rows = page.locator("#requests tbody tr[data-id]")
    rows.first.wait_for()
    assert rows.count() == 1
    assert "/checkout" in rows.first.inner_text() and "500" in rows.first.inner_text()
    # The same page's slowest requests: the search first.
    page.goto(f"{server.url}/metrics/{project.public_id}/")
    first = page.locator("#slowest-requests tbody tr[data-id]").first
    first.wait_for()
    assert "GET /search" in first.inner_text()


def test_the_demo_says_when_the_server_is_not_running(db):
    with pytest.raises(CommandError, match=r"http://127\.0\.0\.1:9 is not reachable .*make run"):
        call_command("demo_links", url="http://127.0.0.1:9")


def test_the_demo_names_the_dev_tools_it_misses(db, monkeypatch):
    from trace_project.management.commands import demo_links

    monkeypatch.setattr(demo_links, "NEEDED", (*demo_links.NEEDED, "no_such_package.sub"))
    with pytest.raises(CommandError, match=r"\(no_such_package\.sub not found for .*"
                                           r"run `make demo-links`"):
        call_command("demo_links", url="http://127.0.0.1:9")
