import json

import pytest

from traces.services import ingest_frame
from traces.tests.helpers import README_EXAMPLE, span, trace_end, trace_start

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def public(settings):
    settings.DASHBOARDS_PUBLIC = True


def store(trace_id, messages):
    ingest_frame(trace_id, json.dumps(messages))


def test_empty_list_says_how_to_send_traces(client):
    html = client.get("/traces/").content.decode()
    assert "No traces yet." in html and "send_demo_traces" in html


def test_list_shows_traces_with_human_durations_and_links(client):
    store(1, README_EXAMPLE)
    store(2, [trace_start(1700000000000), trace_end(1700000000250)])  # milliseconds
    html = client.get("/traces/").content.decode()
    assert 'href="/traces/1/"' in html and "movies_load" in html
    assert "8 s" in html and "250 ms" in html
    assert "badge status-complete" in html
    assert "2019-10-01 23:21:22" in html  # the README trace's start, read as Unix seconds


def test_list_filters_and_keeps_them_in_pagination(client):
    for trace_id in range(1, 31):
        store(trace_id, [trace_start(0), trace_end(trace_id), *span("s", f"op{trace_id % 2}", 0, 1)])
    html = client.get("/traces/?name=op1").content.decode()
    assert html.count('class="badge status-complete"') == 15
    html = client.get("/traces/?min_duration=26").content.decode()
    assert html.count('class="badge status-complete"') == 5
    html = client.get("/traces/").content.decode()
    assert "Page 1 of 2" in html and 'href="?page=2"' in html
    html = client.get("/traces/?status=complete").content.decode()
    assert 'href="?status=complete&page=2"' in html
    html = client.get("/traces/?name=nothing").content.decode()
    assert "No trace matches these filters." in html


def test_bad_filters_are_shown(client):
    html = client.get("/traces/?min_duration=x").content.decode()
    assert "errorlist" in html and "min_duration" in html


def test_trace_page_and_404(client):
    store(7, README_EXAMPLE[:3])
    html = client.get("/traces/7/").content.decode()
    assert "#7" in html and "waiting for" in html and "TRACE_END" in html
    assert 'data-live="/ws/traces/7/live/"' in html and 'data-open="true"' in html
    assert client.get("/traces/8/").status_code == 404


def test_pages_need_login_unless_public(client, settings):
    settings.DASHBOARDS_PUBLIC = False
    assert client.get("/traces/1/").status_code == 302
