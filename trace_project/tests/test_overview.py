"""The home page's overview ("is anything wrong right now"), fed by the real clients: the
machine API's reporter, the request-metrics batch endpoint and the OpenTelemetry SDK's OTLP
exporter, against a real server; the page in Chromium, updating without a reload."""

import time
from datetime import timedelta

import pytest
import requests
from django.contrib.auth import get_user_model
from django.utils import timezone
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tm_api.models import MasterScenario
from tm_reporter import Reporter
from tm_reporter.client import tree

pytestmark = [pytest.mark.integration]

SECTIONS = ("failing_tests", "flaky_tests", "silent_machines", "projects_over_limits",
            "error_traces")


@pytest.fixture
def token(project_token):
    return project_token


def a_run(server, machine="rack 1", tests=("test_login.py", "test_cart.py")):
    reporter = Reporter(server.url, machine, timeout=5)
    reporter.dry_run(tree("/suite", "master.py", "", [
        tree("/suite", "scenario.py", "", [tree("/suite/t", name, "") for name in tests],
             "tests")], "scenarios"))
    return reporter


def fail(reporter, name, message):
    reporter.start("/suite/t", name)
    response = requests.post(f"{reporter.url}/tm_api/test_stop/", json={
        "machine_name": reporter.machine_name, "file_path": "/suite/t", "file_name": name,
        "status": "failed", "outcome": "failed", "message": message,
        "timestamp_stop": timezone.now().isoformat()}, timeout=5)
    assert response.status_code in (200, 202), response.text


def an_error_trace(server, token):
    provider = TracerProvider(resource=Resource.create({"service.name": "payments"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{server.url}/v1/traces", headers={"Authorization": f"Bearer {token}"})))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("POST /pay", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span("charge card") as charge:
            charge.set_status(Status(StatusCode.ERROR, "card declined"))
    provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def server_errors(server, token, count=25):
    events = [{"time": time.time() - 1, "duration_ms": 40, "method": "get", "path": "/pay/",
               "view": "pay", "status": 500} for _ in range(count)]
    response = requests.post(f"{server.url}/api/tracking/ingest/", json={"events": events},
                             headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code in (200, 202), response.text


def test_the_overview_names_each_thing_wrong_and_links_to_its_page(server_factory, token):
    server = server_factory(DASHBOARDS_PUBLIC="True", TM_ALLOW_ANONYMOUS_MACHINES="True",
                            OVERVIEW_SILENT_SECONDS="60")
    overview = requests.get(f"{server.url}/api/overview/", timeout=5).json()
    assert overview["all_clear"] is True
    assert {name: overview[name]["count"] for name in SECTIONS} == dict.fromkeys(SECTIONS, 0)

    reporter = a_run(server)
    fail(reporter, "test_login.py", "wrong user returned")
    silent = a_run(server, machine="rack 2", tests=("test_a.py",))
    silent.start("/suite/t", "test_a.py")
    MasterScenario.objects.filter(run__machine__machine_name="rack 2").update(
        last_report=timezone.now() - timedelta(seconds=300))
    trace_id = an_error_trace(server, token)
    server_errors(server, token)
    # Passed, then failed, on one commit: flaky (JUnit XML imports of two CI jobs).
    for outcome in ("", "<failure message='timeout'/>"):
        junit = (f"<testsuite name='api'><testcase classname='api.Checkout' name='test_pay' "
                 f"time='0.5'>{outcome}</testcase></testsuite>")
        response = requests.post(f"{server.url}/tm_api/junit/?machine=ci&commit=abc123",
                                 data=junit, headers={"Content-Type": "application/xml"},
                                 timeout=5)
        assert response.status_code == 201, response.text

    overview = requests.get(f"{server.url}/api/overview/", timeout=5).json()
    assert overview["all_clear"] is False
    failing = {item["machine"]: item for item in overview["failing_tests"]["items"]}["rack 1"]
    assert (failing["test"], failing["status"], failing["message"]) == (
        "test_login.py", "failed", "wrong user returned")
    assert failing["quarantined"] is False
    assert requests.get(server.url + failing["history"], timeout=5).status_code == 200
    (flaky,) = overview["flaky_tests"]["items"]
    assert (flaky["test"], flaky["passes"], flaky["failures"]) == ("test_pay", 1, 1)
    (quiet,) = overview["silent_machines"]["items"]
    assert quiet["machine"] == "rack 2" and quiet["silent_seconds"] >= 300
    (project,) = overview["projects_over_limits"]["items"]
    assert project["project"] == "shop" and project["requests"] == 25
    assert project["limits"] == ["error rate 100.0% (limit 5.0%)"]
    (trace,) = overview["error_traces"]["items"]
    assert (trace["trace"], trace["name"], trace["service"], trace["errors"]) == (
        trace_id, "POST /pay", "payments", 1)
    # Every item's link opens its page.
    for name in SECTIONS:
        url = overview[name]["items"][0]["url"]
        assert requests.get(server.url + url, timeout=5).status_code == 200, url

    # A later run of the machine that passes clears its failing test: only latest runs count.
    again = a_run(server)
    again.start("/suite/t", "test_login.py")
    again.stop("/suite/t", "test_login.py", "passed")
    overview = requests.get(f"{server.url}/api/overview/", timeout=5).json()
    assert [item["machine"] for item in overview["failing_tests"]["items"]] == ["ci"]


def test_the_home_page_keeps_its_overview_from_visitors_who_may_not_see_dashboards(client, db):
    page = client.get("/")
    assert page.status_code == 200
    assert b'id="overview"' not in page.content and b"Log in</a> to see what is wrong" in page.content
    assert client.get("/overview/panel/").status_code == 403
    assert client.get("/api/overview/").status_code == 403
    user = get_user_model().objects.create_user("ann", password="pw-for-ann-1")
    client.force_login(user)
    page = client.get("/")
    assert b'id="overview"' in page.content and b"Nothing is wrong right now" in page.content


def test_the_home_page_shows_a_failing_test_and_an_error_trace_without_a_reload(
        server_factory, token, page):
    server = server_factory(DASHBOARDS_PUBLIC="True", TM_ALLOW_ANONYMOUS_MACHINES="True")
    page.goto(f"{server.url}/")
    page.wait_for_selector(".live-indicator.connected")
    page.wait_for_selector(".overview-verdict.ok")
    page.evaluate("window.__same_page = true")

    reporter = a_run(server, machine="lab")
    fail(reporter, "test_cart.py", "db fixture exploded <script>")
    # The machine list's socket announces the change: the panel is swapped in within seconds.
    page.wait_for_selector("#overview-failing-tests[data-count='1']", timeout=8000)
    item = page.locator("#overview-failing-tests li")
    assert "test_cart.py" in item.inner_text() and "db fixture exploded <script>" in item.inner_text()
    assert page.locator(".overview-verdict.ok").count() == 0

    an_error_trace(server, token)
    # No socket for traces here: the 10 s refresh brings it.
    page.wait_for_selector("#overview-error-traces[data-count='1']", timeout=15000)
    assert page.evaluate("window.__same_page") is True
    page.click("#overview-error-traces li a")
    page.wait_for_url("**/traces/*/")
    page.goto(f"{server.url}/")
    # The panel is fetched again once the socket opens and swapped in whole: the click goes to
    # the link that stays (a swap during the press itself waits: the test below).
    page.wait_for_selector("#overview[data-refreshed]")
    page.click("#overview-failing-tests li a")
    page.wait_for_url("**/machines/runs/*/")


def test_a_refresh_that_comes_while_a_link_is_pressed_waits_and_the_click_goes_through(
        server_factory, page):
    server = server_factory(DASHBOARDS_PUBLIC="True", TM_ALLOW_ANONYMOUS_MACHINES="True")
    reporter = a_run(server, machine="lab")
    fail(reporter, "test_cart.py", "first failure")
    page.goto(f"{server.url}/")
    page.wait_for_selector("#overview[data-refreshed]")
    link = page.locator("#overview-failing-tests li a").first
    box = link.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    # A change while the button is held: the panel's new copy arrives before the release.
    with page.expect_response(lambda response: "/overview/" in response.url) as fetched:
        fail(reporter, "test_login.py", "second failure")
    assert fetched.value.ok
    fetched.value.finished()  # its body read by the page too
    page.wait_for_timeout(100)  # and handed to the panel's code
    assert page.locator("#overview-failing-tests[data-count='1']").count() == 1  # not yet shown
    page.mouse.up()
    page.wait_for_url("**/machines/runs/*/")
