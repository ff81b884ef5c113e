"""The trace pages in headless Chromium against a real server."""

import json
import threading
import time

import pytest
import websocket
from django.db import connection

from traces.messages import parse_message
from traces.models import Trace
from traces.services import ingest_messages
from traces.tests.helpers import README_EXAMPLE, event, span, trace_end, trace_start

pytestmark = pytest.mark.integration


def test_an_open_trace_page_shows_new_spans_live(server_factory, page):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    ws = websocket.create_connection(f"{server.ws_url}/ws/trace/42", timeout=10)
    ws.send(json.dumps([README_EXAMPLE[0], *README_EXAMPLE[5:6]]))  # TRACE_START, movies_load starts
    deadline = time.monotonic() + 10  # the frame is stored by the server, a moment later
    while not Trace.objects.filter(id=42).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    page.goto(f"{server.url}/traces/42/")
    page.wait_for_selector(".live-indicator.connected")
    page.wait_for_selector(".wf-row .wf-name:text-is('movies_load')")
    assert page.locator(".wf-name:text-is('movies_network_load')").count() == 0
    assert "TRACE_END" in page.inner_text("#trace-missing")

    ws.send(json.dumps(README_EXAMPLE[2:3]))  # a new span starts
    page.wait_for_selector(".wf-name:text-is('movies_network_load')")
    ws.send(json.dumps([README_EXAMPLE[1], README_EXAMPLE[3], README_EXAMPLE[4], README_EXAMPLE[6]]))
    assert json.loads(ws.recv())["message"] == "Trace stored. Closing the connection"
    page.wait_for_selector("#trace-status:text-is('complete')")
    assert page.locator("#trace-missing").is_hidden()
    assert page.locator(".wf-event").count() == 1
    # Span detail on click, and collapsing a subtree.
    page.click(".wf-name:text-is('movies_network_load')")
    assert "Duration" in page.inner_text("#span-detail") and "6 s" in page.inner_text("#span-detail")
    page.click("button[aria-label='Collapse movies_load']")
    assert page.locator(".wf-name:text-is('movies_network_load')").count() == 0
    page.click("#expand-all")
    assert page.locator(".wf-name:text-is('movies_network_load')").count() == 1


def _big_trace(trace_id, groups=100, per_group=99):
    messages = [trace_start(0), trace_end(groups * 100)]
    for g in range(groups):
        messages += span(f"g{g}", f"request {g}", g * 100, g * 100 + 99)
        for c in range(per_group):
            messages += span(f"g{g}-{c}", f"query {g}.{c}", g * 100 + c, g * 100 + c + 1)
        messages.append(event(f"cache miss {g}", g * 100 + 50))
    parsed = [parse_message(m) for m in messages]
    for first in range(0, len(parsed), 10_000):
        ingest_messages(trace_id, parsed[first:first + 10_000])
    connection.close()


def test_a_ten_thousand_span_trace_stays_usable(server_factory, page):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    # In a thread of its own: this thread runs Playwright's event loop, where the service's
    # after-commit live frames cannot be sent.
    builder = threading.Thread(target=_big_trace, args=(7,))  # 100 + 100 * 99 = 10,000 spans
    builder.start()
    builder.join()
    started = time.monotonic()
    page.goto(f"{server.url}/traces/7/")
    page.wait_for_selector(".wf-name:text-is('request 0')")
    loaded = time.monotonic() - started
    assert page.inner_text("#waterfall-count") == "10000 spans"
    assert page.inner_text("#trace-status") == "complete"
    assert page.locator(".wf-row").count() < 80  # only what is in view, not 10,001 rows
    assert loaded < 10, loaded

    started = time.monotonic()
    page.eval_on_selector("#waterfall-viewport", "el => el.scrollTop = el.scrollHeight")
    page.wait_for_selector(".wf-name:text-is('query 99.98')")
    page.eval_on_selector("#waterfall-viewport", "el => el.scrollTop = el.scrollHeight / 2")
    page.wait_for_selector(".wf-name:text-is('request 50')")
    assert time.monotonic() - started < 3
    assert page.locator(".wf-row").count() < 80

    page.click("#collapse-all")
    assert page.inner_text("#waterfall-count") == "10000 spans · 100 shown"
    page.eval_on_selector("#waterfall-viewport", "el => el.scrollTop = 0")
    page.wait_for_selector(".wf-name:text-is('request 0')")


def _deep_trace(trace_id, depth):
    from traces.tests.test_api import nested_spans

    ingest_messages(trace_id, [parse_message(m) for m in nested_spans(depth)])
    connection.close()


def test_a_trace_two_thousand_spans_deep_is_drawn(server_factory, page):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    builder = threading.Thread(target=_deep_trace, args=(8, 2000))  # see the big trace's thread
    builder.start()
    builder.join()
    page.goto(f"{server.url}/traces/8/")
    page.wait_for_selector(".wf-name:text-is('level 0')")
    assert page.inner_text("#waterfall-count") == "2000 spans"
    page.eval_on_selector("#waterfall-viewport", "el => el.scrollTop = el.scrollHeight")
    page.wait_for_selector(".wf-name:text-is('level 1999')")
    # Past a dozen levels the indent stops growing and the row says its depth instead.
    assert page.inner_text(".wf-row:has(.wf-name:text-is('level 1999')) .wf-depth") == "2000"
    page.screenshot(path="/tmp/deep-waterfall.png")


def test_trace_list_sorts_by_a_clicked_header_and_an_open_trace_takes_its_roots_name(
        server_factory, page):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    for trace_id, name, end in ((1, "beta", 5), (2, "alpha", 9), (3, "gamma", 1)):
        ingest_messages(trace_id, [parse_message(m) for m in
                                   [trace_start(0), trace_end(end), *span("s", name, 0, 1)]])
    page.goto(f"{server.url}/traces/?status=complete")
    names = lambda: page.locator(".trace-table tbody td:nth-child(2)").all_inner_texts()
    assert names() == ["gamma", "alpha", "beta"]  # newest received first
    page.click(".trace-table th a:text-is('Name')")
    page.wait_for_url("**sort=name**")
    assert names() == ["alpha", "beta", "gamma"]
    assert "status=complete" in page.url  # the filter stays
    assert page.locator("th[aria-sort=ascending]").inner_text().startswith("Name")
    page.click(".trace-table th a:has-text('Name')")
    page.wait_for_url("**sort=-name**")
    assert names() == ["gamma", "beta", "alpha"]
    page.click(".trace-table th a:text-is('Duration')")
    page.wait_for_url("**sort=-duration**")
    assert names() == ["alpha", "beta", "gamma"]

    # The page's script redraws the figures the server wrote, in the same words.
    long_trace = [trace_start(0), trace_end(2 * 86400 + 3 * 3600), *span("s", "long", 0, 1)]
    ingest_messages(60, [parse_message(m) for m in long_trace])
    page.goto(f"{server.url}/traces/60/")
    page.wait_for_selector(".wf-row .wf-name:text-is('long')")
    assert page.inner_text("#trace-duration") == "2 d 3 h"

    # The documented example's order: the child's SPAN_START arrives before its parent's, while it
    # is open.
    ws = websocket.create_connection(f"{server.ws_url}/ws/trace/50", timeout=10)
    ws.send(json.dumps(README_EXAMPLE[:3]))
    deadline = time.monotonic() + 10
    while not Trace.objects.filter(id=50, name="movies_network_load").exists() \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    page.goto(f"{server.url}/traces/50/")
    page.wait_for_selector(".live-indicator.connected")
    assert page.inner_text("#trace-name") == "movies_network_load"
    ws.send(json.dumps(README_EXAMPLE[3:6]))  # the root's SPAN_START; TRACE_END still missing
    page.wait_for_selector("#trace-name:text-is('movies_load')")
    assert page.inner_text("#trace-status") == "open"
    ws.close()
