"""Pages: project list and project page, rendered by Django and live in headless Chromium."""

import gzip
import json
import time

import pytest
import requests

from tracking import services
from tracking.models import Project
from tracking.wire import parse_batch_event

pytestmark = [pytest.mark.integration]


@pytest.mark.django_db
def test_project_list_shows_last_day_and_empty_state(admin_client):
    empty = admin_client.get("/metrics/").content.decode()
    assert "No tracked projects yet" in empty and "create_project" in empty
    project, _ = Project.create_with_token("Shop")
    services.ingest_events(project, [parse_batch_event(
        {"time": time.time(), "duration_ms": 12, "path": "/", "status": status})
        for status in (200, 200, 500, 404)])
    html = admin_client.get("/metrics/").content.decode()
    assert f'href="/metrics/{project.public_id}/"' in html and "Shop" in html
    assert '<td class="num">4</td>' in html and "25 %" in html


@pytest.mark.django_db
def test_project_page_needs_login_and_404s_for_unknown(client, admin_client):
    project, _ = Project.create_with_token("Shop")
    assert client.get(f"/metrics/{project.public_id}/").status_code == 302
    html = admin_client.get(f"/metrics/{project.public_id}/").content.decode()
    assert "chart-latency" in html and f"/ws/metrics/{project.public_id}/" in html
    assert admin_client.get("/metrics/00000000-0000-0000-0000-000000000000/").status_code == 404


def send_batch(server, token, events):
    return requests.post(
        server.url + "/api/tracking/ingest/", data=gzip.compress(json.dumps({"events": events}).encode()),
        headers={"Authorization": f"Bearer {token}", "Content-Encoding": "gzip",
                 "Content-Type": "application/json"}, timeout=10)


def test_dashboard_updates_live_in_chromium(asgi_server, page, browser_login, django_user_model):
    django_user_model.objects.create_user("ada", "ada@example.com", "lovelace analytical 1843")
    project, token = Project.create_with_token("Live shop")
    browser_login(page, asgi_server, "ada", "lovelace analytical 1843")
    page.goto(f"{asgi_server.url}/metrics/{project.public_id}/")
    page.wait_for_selector(".live-indicator.connected")
    page.wait_for_selector("#empty-state:not([hidden])")
    assert page.locator("#stat-count").inner_text() == "0"

    now = time.time()
    events = [{"time": now - i, "duration_ms": 20 + i, "path": f"/orders/{i}", "status": 200,
               "view": "orders", "method": "GET"} for i in range(5)]
    events.append({"time": now, "duration_ms": 900, "path": "/pay", "status": 503,
                   "view": "payments", "method": "POST"})
    assert send_batch(asgi_server, token, events).json()["accepted"] == 6

    page.wait_for_function("document.getElementById('stat-count').textContent === '6'")
    assert page.locator("#empty-state").is_hidden()
    assert page.locator("#requests tbody tr").count() == 6
    assert page.locator("#failing-views tbody tr").first.inner_text().startswith("payments")
    assert page.locator("#slowest-views tbody tr").first.inner_text().startswith("payments")
    assert page.locator("#chart-latency path[data-series=p95]").count() == 1
    assert "17 %" in page.locator("#stat-errors").inner_text()

    # More arrive: the page follows without a reload.
    send_batch(asgi_server, token, [{"time": time.time(), "duration_ms": 5, "path": "/late",
                                     "status": 200, "view": "late"}])
    page.wait_for_function("document.getElementById('stat-count').textContent === '7'")
    assert "/late" in page.locator("#requests tbody tr").first.inner_text()

    # Filters go through the requests API.
    page.fill("#request-filters [name=status]", "5xx")
    page.click("#request-filters button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#requests tbody tr').length === 1")
    assert "/pay" in page.locator("#requests tbody").inner_text()
