"""Text from clients is shown as text: HTML and script payloads go in through every ingest path
of a real server (websocket, REST with real tokens), then every page that shows them is opened
in headless Chromium, before and while live frames arrive. A payload that ran would set
window.__xss; a payload escaped twice or dropped would not be visible as the text sent."""

import json
import time

import pytest
import requests
import websocket

pytestmark = pytest.mark.integration

IMG = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=1</script>"
SVG = '"><svg onload=window.__xss=1>'
PASSWORD = "correct horse battery 9"


@pytest.fixture
def logged_in(asgi_server, page, browser_login, django_user_model):
    django_user_model.objects.create_user("mallory", "m@example.com", PASSWORD)
    browser_login(page, asgi_server, "mallory", PASSWORD)
    return page


def assert_inert(page, *texts):
    """No payload ran, and each text shows as itself."""
    page.wait_for_timeout(150)  # an onerror/onload handler would have fired by now
    assert page.evaluate("typeof window.__xss") == "undefined", page.url
    shown = page.inner_text("body")
    for text in texts:
        assert text in shown, f"{text!r} not shown as text on {page.url}"


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- traces: span and event names and services over /ws/trace/<id> ---------------------------

def send_frame(server, trace_id, messages, expect_reply=False):
    ws = websocket.create_connection(f"{server.ws_url}/ws/trace/{trace_id}", timeout=10)
    ws.send(json.dumps(messages))
    reply = json.loads(ws.recv()) if expect_reply else None
    return ws, reply


def test_trace_names_and_services_are_text(asgi_server, logged_in):
    from traces.models import Trace

    page, server = logged_in, asgi_server
    _, reply = send_frame(server, 501, [
        {"type": "TRACE_START", "timestamp": 100, "group_id": "t", "service": SVG},
        {"type": "SPAN_START", "timestamp": 100, "group_id": "a", "name": IMG, "service": SVG},
        {"type": "SPAN_START", "timestamp": 101, "group_id": "b", "name": SCRIPT},
        {"type": "SPAN_END", "timestamp": 102, "group_id": "b"},
        {"type": "SPAN_END", "timestamp": 103, "group_id": "a"},
        {"type": "EVENT", "timestamp": 101.5, "name": SVG},
        {"type": "TRACE_END", "timestamp": 104, "group_id": "t"},
    ], expect_reply=True)
    assert reply["message"].startswith("Trace stored")

    page.goto(f"{server.url}/traces/")
    assert_inert(page, IMG, SVG)
    page.goto(f"{server.url}/traces/?name={requests.utils.quote(SCRIPT)}")
    assert_inert(page, IMG)
    page.goto(f"{server.url}/traces/501/")
    page.wait_for_selector(".wf-row .wf-name")
    assert_inert(page, IMG, SCRIPT)
    page.locator(".wf-name", has_text=IMG).click()  # span detail: name and service
    assert_inert(page, SVG)
    assert IMG in page.inner_text("#span-detail") and SVG in page.inner_text("#span-detail")
    page.locator(".wf-event").first.click()  # event detail
    assert SVG in page.inner_text("#span-detail")
    assert_inert(page)

    # Live: the page of an open trace is showing when payload spans arrive.
    ws, _ = send_frame(server, 502, [
        {"type": "TRACE_START", "timestamp": 1, "group_id": "t"},
        {"type": "SPAN_START", "timestamp": 1, "group_id": "a", "name": "plain"}])
    wait_until(lambda: Trace.objects.filter(pk=502).exists())
    page.goto(f"{server.url}/traces/502/")
    page.wait_for_selector(".live-indicator.connected")
    page.wait_for_selector(".wf-name:text-is('plain')")
    ws.send(json.dumps([
        {"type": "SPAN_START", "timestamp": 2, "group_id": "b", "name": SCRIPT, "service": IMG},
        {"type": "EVENT", "timestamp": 2, "name": IMG}]))
    page.locator(".wf-name", has_text=SCRIPT).wait_for()
    assert_inert(page, SCRIPT)
    page.locator(".wf-name", has_text=SCRIPT).click()
    assert_inert(page, IMG)
    ws.close()


# --- traces over OTLP: names, services, attributes, events, links, status messages ------------

def test_otlp_span_fields_are_text(asgi_server, logged_in):
    from tracking.models import Project

    page, server = logged_in, asgi_server
    project = Project(name="escaping")
    token = project.issue_token()
    project.save()
    trace_id, t0 = "1bf92f3577b34da6a3ce929d0e0e4736", 1_700_000_000_000_000_000

    def value(text):
        return {"stringValue": text}

    spans = [
        {"traceId": trace_id, "spanId": "00f067aa0ba902b7", "name": IMG,
         "startTimeUnixNano": str(t0), "endTimeUnixNano": str(t0 + 10**8),
         "status": {"code": 2, "message": SCRIPT},
         "attributes": [{"key": SVG, "value": value(IMG)}],
         "events": [{"name": SVG, "timeUnixNano": str(t0 + 10**7),
                     "attributes": [{"key": "e", "value": value(SCRIPT)}]}],
         "links": [{"traceId": "0af7651916cd43dd8448eb211c80319c",
                    "spanId": "00f067aa0ba902b8", "attributes": [{"key": IMG, "value": value(SVG)}]}]},
        {"traceId": trace_id, "spanId": "00f067aa0ba902b9", "parentSpanId": "00f067aa0ba902b7",
         "name": SCRIPT, "startTimeUnixNano": str(t0 + 10**7), "endTimeUnixNano": str(t0 + 5 * 10**7)},
    ]
    document = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": value(SVG)},
                                    {"key": SCRIPT, "value": value(IMG)}]},
        "scopeSpans": [{"spans": spans}]}]}
    response = requests.post(f"{server.url}/v1/traces", data=json.dumps(document), timeout=10,
                             headers={"Content-Type": "application/json",
                                      "Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text

    page.goto(f"{server.url}/traces/")
    page.wait_for_selector("#scatter-plot svg")
    page.wait_for_selector("select[name=service]")  # the picker, fed by the services API
    assert_inert(page, IMG)
    assert SVG in page.locator("select[name=service] option").all_inner_texts()
    page.goto(f"{server.url}/traces/{trace_id}/")
    page.wait_for_selector(".wf-row .wf-name")
    assert_inert(page, IMG, SCRIPT, SVG)  # names, the legend, the statistics
    page.locator(".wf-name", has_text=IMG).click()  # span detail: every part of the span
    assert_inert(page, SVG, SCRIPT)
    detail = page.inner_text("#span-detail")
    for text in (IMG, SCRIPT, SVG):
        assert text in detail
    page.fill("#trace-search", SCRIPT)
    page.wait_for_selector("#search-count:text-is('2 of 2 matches'), #search-count:text-is('1 of 2 matches')")
    assert_inert(page)
    page.locator(".wf-event").first.click()  # event detail
    assert SVG in page.inner_text("#span-detail") and SCRIPT in page.inner_text("#span-detail")
    assert_inert(page)


# --- test machines: names, paths and scripts over /tm_api/ ------------------------------------

def test_machine_names_paths_and_scripts_are_text(asgi_server, logged_in):
    from tm_api.auth import issue_token
    from tm_api.models import Machine

    page, server = logged_in, asgi_server
    _, secret = issue_token("escaping")
    api = requests.Session()
    api.headers["Authorization"] = f"Token {secret}"
    machine_name = "rack " + SVG
    test_file = IMG + ".py"
    dry_run = {
        "machine_name": machine_name, "timestamp": "2024-05-01 10:00:00",
        "master_scenario": {
            "file_path": "/m/" + SVG, "file_name": SCRIPT + ".py", "script": SCRIPT,
            "scenarios": [{"file_path": "/s/" + IMG, "file_name": SVG + ".py", "script": IMG,
                           "tests": [{"file_path": "/t/" + SCRIPT, "file_name": test_file,
                                      "script": "# " + SVG + "\n" + SCRIPT},
                                     {"file_path": "/t", "file_name": "second.py",
                                      "script": ""}]}],
        },
    }
    assert api.post(f"{server.url}/tm_api/dry_run/", json=dry_run).status_code == 201
    machine = Machine.objects.get()
    start = {"machine_name": machine_name, "file_path": "/t/" + SCRIPT, "file_name": test_file}
    assert api.post(f"{server.url}/tm_api/test_start/", json=start).status_code == 202

    page.goto(f"{server.url}/machines/")
    assert_inert(page, machine_name)
    page.goto(f"{server.url}/machines/{machine.pk}/")
    assert_inert(page, machine_name)
    page.goto(f"{server.url}/machines/runs/{machine.last_run_id}/")
    assert_inert(page, machine_name, test_file, SVG + ".py")
    for title in (test_file, SVG + ".py", SCRIPT + ".py"):  # the script modal of each kind
        page.locator(f"button.tm-script[data-script-title='{title}']").click()
        page.wait_for_selector("dialog.tm-modal[open] .body .highlight")
        assert_inert(page, title)
        assert page.inner_text("#tm-script-title") == title
        body = page.inner_text("dialog.tm-modal .body")
        assert SCRIPT in body or IMG in body
        page.click("[data-close-modal]")

    # Live: the last-run page and the machine list are open when the test stops.
    page.goto(f"{server.url}/machines/{machine.pk}/last/")
    page.wait_for_selector(".live-indicator.connected")
    assert_inert(page, test_file)
    stop = {**start, "status": "failed"}
    assert api.post(f"{server.url}/tm_api/test_stop/", json=stop).status_code == 202
    page.wait_for_selector("tr.test .badge.status-failed")
    assert_inert(page, test_file)
    page.locator("tr.test button.tm-script").first.click()
    page.wait_for_selector("dialog.tm-modal[open] .highlight")
    assert_inert(page, SCRIPT)

    listing = page.context.new_page()
    listing.goto(f"{server.url}/machines/")
    listing.wait_for_selector(".live-indicator.connected")
    second = {"machine_name": machine_name, "file_path": "/t", "file_name": "second.py"}
    assert api.post(f"{server.url}/tm_api/test_start/", json=second).status_code == 202
    listing.wait_for_selector(f"tr[data-machine-id='{machine.pk}'] .badge.status-running")
    assert_inert(listing, machine_name)
    listing.close()


# --- request metrics: paths, view names and user agents over both ingest endpoints -----------

def test_request_paths_views_and_agents_are_text(asgi_server, logged_in):
    from tracking.models import Project

    page, server = logged_in, asgi_server
    project, secret = Project.create_with_token("shop " + IMG)
    path = "/cart/" + SCRIPT
    now = time.time()
    batch = {"events": [{"time": now - 5, "duration_ms": 12.0, "method": "GET", "path": path,
                         "query": "q=" + SVG, "view": "view " + IMG, "status": 500,
                         "user_agent": SCRIPT, "headers": {"Referer": IMG}}]}
    answer = requests.post(f"{server.url}/api/tracking/ingest/", json=batch,
                           headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    seed = {"project_token": secret, "event_type": "page_view", "ra_tracker_version": "v2.0.5",
            "event_data": {"view_name": "seed " + SVG,
                           "header_data": {"HTTP_HOST": "shop.example",
                                           "HTTP_USER_AGENT": IMG},
                           "full_url": "http://shop.example/seed/" + IMG,
                           "ra_session_id": "s", "time_request_received_ns": time.time_ns() - 10**9,
                           "processing_time_ns": 3_000_000,
                           "response_data": {"status_code": 200}}}
    answer = requests.post(f"{server.url}/tracking/{project.public_id}", json=seed)
    assert answer.status_code == 201

    page.goto(f"{server.url}/metrics/")
    assert_inert(page, "shop " + IMG)
    page.goto(f"{server.url}/metrics/{project.public_id}/")
    page.wait_for_selector(".live-indicator.connected")
    page.locator("#requests tbody td", has_text=path).first.wait_for()
    assert_inert(page, "shop " + IMG, path, "view " + IMG, "seed " + SVG)

    # Live: a new batch arrives while the page is open; the tables are redrawn from the API.
    batch["events"][0].update(time=time.time() - 1, path="/live/" + SVG, view="live " + SCRIPT)
    answer = requests.post(f"{server.url}/api/tracking/ingest/", json=batch,
                           headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200
    page.locator("#requests tbody td", has_text="/live/" + SVG).first.wait_for()
    assert_inert(page, "/live/" + SVG, "live " + SCRIPT)


# --- notifications: titles, texts and channel names ------------------------------------------

def test_notification_titles_are_text(asgi_server, logged_in):
    from notifications.models import Channel
    from notifications.services import raise_notification

    page, server = logged_in, asgi_server
    Channel.objects.create(name="hook " + SVG, kind="webhook", url="http://127.0.0.1:9/h",
                           rules=["run_failed"])
    raise_notification("run_failed", "k1", "Run failed on " + IMG, "text " + SCRIPT,
                       facts=[("machine", SVG)])
    page.goto(f"{server.url}/notifications/")
    assert_inert(page, "Run failed on " + IMG, "hook " + SVG)
