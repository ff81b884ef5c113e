"""The trace pages in headless Chromium, with traces sent by the real OpenTelemetry SDK and its
OTLP/HTTP exporter to a real server: what a developer debugs with (errors, attributes, services,
search, statistics, the critical path), the list's scatter, service picker and sorting, and an
open trace's page growing as the exporter's batches arrive."""

import json
import threading
import time

import pytest
from django.db import connection
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from traces import otel
from traces.span_ingest import ingest_spans

pytestmark = [pytest.mark.integration]

BASE = 1_700_000_000_000_000_000  # ns
MS = 1_000_000
XSS = '<img src=x onerror="window.__xss=1">'
LINKED = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def token(project_token):
    return project_token


class Services:
    """One TracerProvider per service (each with its resource), all exporting to the server."""

    def __init__(self, server, token, *names):
        self.providers = {}
        for name in names:
            provider = TracerProvider(resource=Resource.create(
                {"service.name": name, "deployment.environment": "test"}))
            provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
                endpoint=f"{server.url}/v1/traces",
                headers={"Authorization": f"Bearer {token}"})))
            self.providers[name] = provider

    def start(self, service, name, at_ms, parent=None, **options):
        context = otel_trace.set_span_in_context(parent) if parent is not None else None
        return self.providers[service].get_tracer("tests").start_span(
            name, context=context, start_time=BASE + at_ms * MS, **options)

    def shutdown(self):
        for provider in self.providers.values():
            provider.shutdown()


def end(span, at_ms):
    span.end(end_time=BASE + at_ms * MS)


def checkout_trace(services):
    """GET /checkout (frontend, 0-100 ms) > auth (auth, 10-40) and charge (payments, 30-90,
    failed) > INSERT payment (db, 40-60). Self times: frontend 20, auth 30, payments 40, db 20 ms.
    Critical path: GET /checkout 90-100, charge 60-90, INSERT 40-60, charge 30-40,
    GET /checkout 0-30 (auth ends after charge began: not on it). Returns the root span and the
    spans but the root, to end in whichever order a test wants."""
    root = services.start("frontend", "GET /checkout", 0, kind=SpanKind.SERVER,
                          attributes={"http.method": "GET", "http.route": "/checkout"})
    auth = services.start("auth", "auth", 10, parent=root)
    link = Link(SpanContext(int(LINKED, 16), 0x00F067AA0BA902B7, is_remote=True,
                            trace_flags=TraceFlags(1)), {"link.reason": "retry of"})
    charge = services.start("payments", "charge", 30, parent=root, kind=SpanKind.CLIENT,
                            links=[link], attributes={
                                "payment.amount": 12.5, "payment.currency": "EUR",
                                "payment.note": XSS, "payment.tries": [1, 2]})
    insert = services.start("db", "INSERT payment", 40, parent=charge,
                            attributes={"db.system": "postgresql"})
    insert.add_event("row locked", {"lock.wait_ms": 3}, timestamp=BASE + 50 * MS)
    charge.add_event("card declined", {"decline.code": "insufficient_funds"},
                     timestamp=BASE + 85 * MS)
    charge.set_status(Status(StatusCode.ERROR, "card declined"))
    return root, [(insert, 60), (auth, 40), (charge, 90)]


def hex_id(span):
    return format(span.get_span_context().trace_id, "032x")


def row(page, name):
    return page.locator(f".wf-row:has(.wf-name:text-is('{name}'))")


def test_an_otlp_trace_to_debug_grows_live_and_reads_well(server_factory, token, page):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    services = Services(server, token, "frontend", "auth", "payments", "db")
    root, children = checkout_trace(services)
    trace_id = hex_id(root)
    for span, at in children:  # three batches: the root has not ended yet
        end(span, at)
    page.goto(f"{server.url}/traces/{trace_id}/")
    page.wait_for_selector(".live-indicator.connected")
    page.wait_for_selector("#waterfall[data-loaded='4']")  # 3 spans under the root's placeholder
    assert page.locator(".wf-row.placeholder").count() == 1
    assert row(page, "GET /checkout").count() == 0

    # The root's batch arrives while the page is open: it grows in place.
    end(root, 100)
    page.wait_for_selector(".wf-name:text-is('GET /checkout')")
    page.wait_for_selector("#trace-spans:text-is('4')")
    assert page.locator(".wf-row.placeholder").count() == 0
    assert page.inner_text("#trace-name") == "GET /checkout"
    assert page.inner_text("#trace-service") == "frontend"  # the root's, not the first span's
    assert page.inner_text("#waterfall-count") == "4 spans"

    # Errors: on the span, a ring on its ancestors, none elsewhere; the header counts them.
    assert row(page, "charge").locator(".wf-error-mark").count() == 1
    assert row(page, "GET /checkout").locator(".wf-error-below").count() == 1
    for name in ("auth", "INSERT payment"):
        assert row(page, name).locator(".wf-error-mark, .wf-error-below").count() == 0
    assert page.inner_text("#trace-errors") == "1"

    # One colour per service, named in the legend; a span's bar has its service's colour.
    legend = page.locator("#service-legend .wf-legend-item")
    assert [text.split()[0] for text in legend.all_inner_texts()] == [
        "auth", "db", "frontend", "payments"]
    colours = page.eval_on_selector_all(
        "#service-legend .wf-swatch", "els => els.map(e => getComputedStyle(e).backgroundColor)")
    assert len(set(colours)) == 4
    bar = page.evaluate("""name => getComputedStyle([...document.querySelectorAll('.wf-row')]
        .find((r) => r.querySelector('.wf-name').textContent === name)
        .querySelector('.wf-bar')).backgroundColor""", "charge")  # one look: no row redrawn between
    assert bar == colours[3]

    # The critical path: the root, charge and the insert; not auth (it ended after charge began).
    on_path = page.locator(".wf-row.on-critical-path .wf-name").all_inner_texts()
    assert on_path == ["GET /checkout", "charge", "INSERT payment"]
    assert page.locator(".wf-critical").count() == 5  # 2 + 2 + 1 sections
    page.uncheck("#show-critical")
    assert page.locator(".wf-critical").count() == 0
    page.check("#show-critical")

    # The span's detail: status, attributes, resource, events and links, readable; the payload
    # shown as the text it is, not run.
    page.click(".wf-name:text-is('charge')")
    detail = page.locator("#span-detail")
    assert "error: card declined" in detail.inner_text()
    attributes = dict(zip(detail.locator(".attributes th").all_inner_texts(),
                          detail.locator(".attributes td").all_inner_texts(), strict=True))
    assert attributes == {"payment.amount": "12.5", "payment.currency": "EUR",
                          "payment.note": XSS, "payment.tries": "[1,2]"}
    resource = dict(zip(detail.locator(".resource th").all_inner_texts(),
                        detail.locator(".resource td").all_inner_texts(), strict=True))
    assert resource["service.name"] == "payments" and resource["deployment.environment"] == "test"
    events = detail.locator(".events li").inner_text()
    assert "card declined at +85 ms" in events and "decline.code" in events
    assert "insufficient_funds" in events
    link = detail.locator(".links a")
    assert link.inner_text() == LINKED and link.get_attribute("href") == f"/traces/{LINKED}/"
    assert "00f067aa0ba902b7" in detail.locator(".links").inner_text()
    assert "retry of" in detail.locator(".links").inner_text()
    facts = detail.locator(".trace-facts").inner_text()
    assert "Self time\n40 ms" in facts and "On the critical path\n40 ms" in facts
    assert "Kind\nclient" in facts
    assert page.evaluate("window.__xss") is None
    page.screenshot(path="/tmp/otlp-trace-detail.png", full_page=True)

    # Search: by name, by attribute value, by service; the current match is in view.
    page.fill("#trace-search", "insert")
    page.wait_for_selector("#search-count:text-is('1 of 1 match')")
    assert row(page, "INSERT payment").get_attribute("class").count("match") == 1
    assert "current" in row(page, "INSERT payment").get_attribute("class")
    page.fill("#trace-search", "postgresql")
    page.wait_for_selector("#search-count:text-is('1 of 1 match')")
    page.fill("#trace-search", "PAYMENT")  # charge's attributes and service, the insert's name
    page.wait_for_selector("#search-count:text-is('1 of 2 matches')")
    assert page.locator(".wf-row.match .wf-name").all_inner_texts() == ["charge", "INSERT payment"]
    page.press("#trace-search", "Enter")
    page.wait_for_selector("#search-count:text-is('2 of 2 matches')")
    assert page.inner_text(".wf-row.match.current .wf-name") == "INSERT payment"
    page.click("#search-next")
    page.wait_for_selector("#search-count:text-is('1 of 2 matches')")
    page.fill("#trace-search", "nothing like it")
    page.wait_for_selector("#search-count:text-is('no match')")
    assert page.locator(".wf-row.match").count() == 0

    # Statistics: self time per service and per operation, exact.
    by_service = page.locator("#trace-stats table").nth(0)
    cells = [r.locator("td").all_inner_texts() for r in by_service.locator("tbody tr").all()]
    assert cells == [
        ["payments", "1", "1", "60 ms", "40 ms", "40 %"],
        ["auth", "1", "0", "30 ms", "30 ms", "30 %"],
        ["db", "1", "0", "20 ms", "20 ms", "20 %"],
        ["frontend", "1", "0", "100 ms", "20 ms", "20 %"],
    ]
    by_operation = page.locator("#trace-stats table").nth(1)
    first = by_operation.locator("tbody tr").first.locator("td").all_inner_texts()
    assert first == ["payments", "charge", "1", "1", "60 ms", "60 ms", "60 ms", "40 ms", "40 %"]
    services.shutdown()


def test_a_span_pressed_while_the_trace_grows_is_selected_on_release(server_factory, token, page):
    """A batch that arrives while a pointer is pressed on a span's row waits to be drawn until
    the release (window.redraw, static/js/live.js): the click selects the span, then the trace
    grows."""
    server = server_factory(DASHBOARDS_PUBLIC="True")
    services = Services(server, token, "frontend", "auth", "payments", "db")
    root, children = checkout_trace(services)
    trace_id = hex_id(root)
    for span, at in children:
        end(span, at)
    page.goto(f"{server.url}/traces/{trace_id}/")
    page.wait_for_selector(".live-indicator.connected")
    page.wait_for_selector("#waterfall[data-loaded='4']")
    box = row(page, "auth").locator(".wf-name").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    with page.expect_response(lambda response: f"/api/trace/{trace_id}/" in response.url
                              and '"GET /checkout"' in response.text()) as fetched:
        end(root, 100)  # the root's batch: the page hears of it and fetches the trace
    fetched.value.finished()
    page.wait_for_timeout(100)  # handed to the page's code
    assert row(page, "GET /checkout").count() == 0  # not drawn under the pointer
    page.mouse.up()
    page.wait_for_selector("#span-detail h2:text-is('auth')")  # the click went through
    page.wait_for_selector(".wf-name:text-is('GET /checkout')")  # then the trace grew
    assert page.locator(".wf-row.placeholder").count() == 0
    services.shutdown()


def test_the_list_scatter_service_picker_errors_and_sorting(server_factory, token, page):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    services = Services(server, token, "frontend", "worker", "auth", "payments", "db")
    root, children = checkout_trace(services)  # 100 ms, one span in error
    for span, at in [*children, (root, 100)]:
        end(span, at)
    home = services.start("frontend", "GET /home", 200)
    end(home, 230)
    sync = services.start("worker", XSS, 300)  # a name to show as text
    end(services.start("worker", "fetch", 310, parent=sync), 350)
    end(sync, 390)  # 90 ms: the durations differ
    services.shutdown()
    ids = {"checkout": hex_id(root), "home": hex_id(home), "sync": hex_id(sync)}

    page.goto(f"{server.url}/traces/")
    names = lambda: page.locator(".trace-table tbody td:nth-child(2) a").all_inner_texts()
    assert names() == [XSS, "GET /home", "GET /checkout"]
    # Errors in the list: a mark by the name, the count in its column.
    assert page.locator("tr.has-error .error-mark").count() == 1
    assert "GET /checkout" in page.inner_text("tr.has-error")
    assert page.inner_text("tr.has-error .badge.status-error") == "1"

    # The scatter: a dot per trace, red for errors; a dot opens its trace.
    page.wait_for_selector("#scatter-plot svg")
    assert page.locator(".scatter-dot").count() == 3
    assert page.locator(".scatter-dot.error").count() == 1
    assert page.locator(f".scatter-link[data-ref='{ids['checkout']}'] .scatter-dot.error").count() == 1
    page.click(f".scatter-link[data-ref='{ids['home']}']")
    page.wait_for_url(f"**/traces/{ids['home']}/")
    page.wait_for_selector(".wf-name:text-is('GET /home')")
    page.go_back()

    # The service picker offers the known services (those of spans too) and filters on a pick,
    # keeping the sort.
    page.click(".trace-table th a:text-is('Duration')")
    page.wait_for_url("**sort=-duration**")
    assert names() == ["GET /checkout", XSS, "GET /home"]
    picker = page.locator("select[name=service]")
    picker.wait_for()
    assert picker.locator("option").all_inner_texts() == [
        "any", "auth", "db", "frontend", "payments", "worker"]
    picker.select_option("frontend")
    page.wait_for_url("**service=frontend**")
    assert "sort=-duration" in page.url
    assert names() == ["GET /checkout", "GET /home"]
    assert page.locator(".scatter-dot").count() == 2
    assert page.locator("select[name=service]").input_value() == "frontend"
    page.locator("select[name=service]").select_option("db")  # a span's service, not a root's
    page.wait_for_url("**service=db**")
    assert names() == ["GET /checkout"]
    # Sorting by errors.
    page.goto(f"{server.url}/traces/")
    page.click(".trace-table th a:text-is('Errors')")
    page.wait_for_url("**sort=-errors**")
    assert names()[0] == "GET /checkout"
    assert page.evaluate("window.__xss") is None
    page.screenshot(path="/tmp/otlp-trace-list.png", full_page=True)


def test_the_pure_computations_on_known_traces(server_factory, page):
    """static/traces/tracemath.js, as the page loads it, on small traces with known answers."""
    server = server_factory(DASHBOARDS_PUBLIC="True")
    page.goto(f"{server.url}/traces/")
    page.add_script_tag(url=f"{server.url}/static/traces/tracemath.js")
    run = lambda items: page.evaluate(
        "items => ({self: TraceMath.selfTimes(items), path: TraceMath.criticalPath(items)})",
        items)

    def item(start, end, *children):
        return {"start": start, "end": end, "children": list(children)}

    # The checkout trace: 0 trace, 1 root, 2 auth, 3 charge, 4 insert.
    result = run([item(0, 100, 1), item(0, 100, 2, 3), item(10, 40), item(30, 90, 4),
                  item(40, 60)])
    assert result["self"] == [0, 20, 30, 40, 20]
    assert result["path"] == [
        {"item": 1, "start": 90, "end": 100}, {"item": 3, "start": 60, "end": 90},
        {"item": 4, "start": 40, "end": 60}, {"item": 3, "start": 30, "end": 40},
        {"item": 1, "start": 0, "end": 30}]
    # Sequential children: each is followed in turn, latest first; the parent keeps the gaps.
    result = run([item(0, 50, 1), item(0, 50, 2, 3, 4), item(5, 15), item(15, 30), item(35, 45)])
    assert result["self"] == [0, 15, 10, 15, 10]
    assert [(s["item"], s["start"], s["end"]) for s in result["path"]] == [
        (1, 45, 50), (4, 35, 45), (1, 30, 35), (3, 15, 30), (2, 5, 15), (1, 0, 5)]
    # A child reaching past its parent (clock skew) counts only inside it; one wholly outside,
    # not at all. Two top-level spans with a gap: the trace itself (item 0) holds the gap.
    result = run([item(0, 100, 1, 3), item(0, 40, 2), item(30, 70), item(60, 100, 4),
                  item(200, 300)])
    assert result["self"] == [20, 30, 10, 40, 0]
    assert [(s["item"], s["start"], s["end"]) for s in result["path"]] == [
        (3, 60, 100), (0, 40, 60), (2, 30, 40), (1, 0, 30)]
    # 10,000 spans under one parent, sequential (built in the page: measured there).
    length, self_of_parent, ms = page.evaluate("""() => {
        const items = [{start: 0, end: 10000, children: [1]},
                       {start: 0, end: 10000, children: []}];
        for (let i = 0; i < 10000; i++) {
            items[1].children.push(items.length);
            items.push({start: i, end: i + 1, children: []});
        }
        const started = performance.now();
        const selfs = TraceMath.selfTimes(items), path = TraceMath.criticalPath(items);
        return [path.length, selfs[1], performance.now() - started];
    }""")
    print(f"\ncriticalPath + selfTimes of 10,000 sequential spans in Chromium: {ms:.0f} ms")
    assert length == 10_000 and self_of_parent == 0


def _big_otlp_trace(trace_id, groups=100, per_group=99):
    """100 requests of 99 queries each (10,000 spans), every 10th query failing, sent as OTLP
    JSON in batches of 2,000 spans through the ingest function."""
    spans = []
    for g in range(groups):
        request_id = f"{g + 1:016x}"
        spans.append({"traceId": trace_id, "spanId": request_id, "name": f"request {g}",
                      "parentSpanId": f"{1:016x}" if g else "",
                      "startTimeUnixNano": str(BASE + g * 100 * MS),
                      "endTimeUnixNano": str(BASE + (g * 100 + 99) * MS)})
        for c in range(per_group):
            spans.append({
                "traceId": trace_id, "spanId": f"{(g + 1) * 1000 + c + 1:016x}",
                "parentSpanId": request_id, "name": f"query {g}.{c}",
                "startTimeUnixNano": str(BASE + (g * 100 + c) * MS),
                "endTimeUnixNano": str(BASE + (g * 100 + c + 1) * MS),
                "status": {"code": 2 if c % 10 == 9 else 0},
                "attributes": [{"key": "db.statement",
                                "value": {"stringValue": f"SELECT {g}.{c}"}}]})
    # The first request is the root: every other one is its child, so the trace has one root.
    for first in range(0, len(spans), 2000):
        body = {"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "big"}}]},
            "scopeSpans": [{"spans": spans[first:first + 2000]}]}]}
        ingest_spans(otel.decode_otlp_json(json.dumps(body).encode()))
    connection.close()


def test_a_ten_thousand_span_otlp_trace_stays_interactive(server_factory, page):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    # In a thread of its own: this thread runs Playwright's event loop (see test_browser.py).
    builder = threading.Thread(target=_big_otlp_trace, args=(trace_id,))
    builder.start()
    builder.join()
    timings = {}
    started = time.monotonic()
    page.goto(f"{server.url}/traces/{trace_id}/")
    page.wait_for_selector("#waterfall[data-loaded='10000']")
    page.wait_for_selector(".wf-name:text-is('request 0')")
    timings["load and draw"] = time.monotonic() - started
    assert page.inner_text("#waterfall-count") == "10000 spans"
    assert page.locator(".wf-row").count() < 80  # only what is in view

    started = time.monotonic()
    page.eval_on_selector("#waterfall-viewport", "el => el.scrollTop = el.scrollHeight")
    page.wait_for_selector(".wf-name:text-is('query 99.98')")
    timings["scroll to the end"] = time.monotonic() - started
    assert page.locator(".wf-row").count() < 80

    started = time.monotonic()
    page.click("#collapse-all")
    page.wait_for_selector("#waterfall-count:text-is('10000 spans · 1 shown')")
    timings["collapse all"] = time.monotonic() - started
    # Search finds a span under collapsed rows and opens them to show it.
    started = time.monotonic()
    page.fill("#trace-search", "select 57.39")
    page.wait_for_selector("#search-count:text-is('1 of 1 match')")
    page.wait_for_selector(".wf-row.match.current .wf-name:text-is('query 57.39')")
    timings["search and reveal"] = time.monotonic() - started
    assert row(page, "query 57.39").locator(".wf-error-mark").count() == 1
    page.fill("#trace-search", "request 57")
    page.wait_for_selector(".wf-row.match.current .wf-name:text-is('request 57')")
    assert row(page, "request 57").locator(".wf-error-below").count() == 1
    started = time.monotonic()
    page.click("#expand-all")
    page.wait_for_selector("#waterfall-count:text-is('10000 spans')")
    timings["expand all"] = time.monotonic() - started
    # The statistics list the most costly operations, and say how many more there are.
    assert "And 9900 more operations" in page.inner_text("#trace-stats")
    print("\n10,000-span OTLP trace in Chromium (not asserted): " + ", ".join(
        f"{what} {seconds:.2f} s" for what, seconds in timings.items()))
