import json
import sys

import pytest
from rest_framework.test import APIClient

from traces.models import Event, Span, Trace
from traces.services import ingest_frames
from traces.tests.helpers import README_EXAMPLE, README_TREE_REST, span, trace_end, trace_start
from traces.tests.helpers import store_trace as store

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def api(settings):
    settings.DASHBOARDS_PUBLIC = True
    return APIClient()


@pytest.fixture
def user_api(django_user_model):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user("ada", password="x"))
    return client


def test_get_200_with_the_tree_as_an_object(api):
    store(1, README_EXAMPLE)
    response = api.get("/api/trace/1/")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == 1 and body["trace"] == README_TREE_REST
    assert body["created"].endswith("Z") or "+" in body["created"]
    assert body["status"] == "complete" and body["duration"] == 8 and body["span_count"] == 2
    assert body["missing"] == [] and body["problems"] == []


def test_get_404_with_detail(api):
    response = api.get("/api/trace/404/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Trace 404 does not exist.", "code": "not_found"}
    assert api.get("/api/trace/abc/").status_code == 404


def test_path_without_trailing_slash_redirects(api):
    response = api.get("/api/trace/1")
    assert response.status_code == 301 and response["Location"] == "/api/trace/1/"


def test_an_open_trace_is_a_preview_saying_what_is_missing(api):
    store(2, README_EXAMPLE[:3])
    body = api.get("/api/trace/2/").json()
    assert body["status"] == "open"
    assert body["missing"] == ["TRACE_END", "the other half of 2 span(s)"]
    assert body["trace"]["open"] is True


def test_delete_needs_a_user_then_204_then_404(api, user_api):
    store(3, README_EXAMPLE)
    assert api.delete("/api/trace/3/").status_code == 403
    response = user_api.delete("/api/trace/3/")
    assert response.status_code == 204 and response.content == b""
    assert user_api.get("/api/trace/3/").status_code == 404
    assert user_api.delete("/api/trace/3/").status_code == 404
    assert (Trace.objects.count(), Span.objects.count(), Event.objects.count()) == (0, 0, 0)


def test_other_methods_are_405(user_api):
    store(4, README_EXAMPLE)
    for method in ("post", "put", "patch"):
        assert getattr(user_api, method)("/api/trace/4/", {}).status_code == 405


def test_reading_follows_the_dashboard_setting(settings):
    store(5, README_EXAMPLE)
    settings.DASHBOARDS_PUBLIC = False
    assert APIClient().get("/api/trace/5/").status_code == 403
    assert APIClient().get("/api/traces/").status_code == 403


def test_list_is_paginated_newest_first_with_the_envelope(api):
    for trace_id in range(1, 13):
        store(trace_id, [trace_start(0), trace_end(trace_id)])
    body = api.get("/api/traces/?page_size=5&page=2").json()
    assert body["count"] == 12 and body["total_pages"] == 3 and body["page_number"] == 2
    assert [t["id"] for t in body["results"]] == [7, 6, 5, 4, 3]
    assert "trace" not in body["results"][0]
    assert body["results"][0]["url"] == "/api/trace/7/"


def test_list_filters(api):
    store(1, [trace_start(0), trace_end(10), *span("a", "checkout", 1, 2)])
    store(2, [trace_start(0), trace_end(100), *span("a", "search", 1, 90),
              *span("b", "checkout", 91, 92)])
    store(3, [trace_start(0), *span("a", "search", 1, 2)])  # open
    store(4, [trace_start(5), trace_end(1.5)])  # inconsistent, float
    ids = lambda query: [t["id"] for t in api.get(f"/api/traces/?{query}").json()["results"]]
    assert ids("name=checkout") == [2, 1]
    assert ids("name=search") == [3, 2]
    assert ids("name=nothing") == []
    # The whole trace's duration, not a span's: trace 1's span lasts 1 but the trace 10.
    assert ids("min_duration=5&max_duration=10") == [1]
    assert ids("min_duration=50") == [2]
    assert ids("status=open") == [3]
    assert ids("status=inconsistent") == [4]
    assert ids("since=2000-01-01T00:00:00Z") == [4, 3, 2, 1]
    assert ids("until=2000-01-01T00:00:00Z") == []


@pytest.mark.parametrize("query, field", [
    ("min_duration=abc", "min_duration"),
    ("status=running", "status"),
    ("since=yesterday", "since"),
    ("min_duration=5&max_duration=1", "max_duration"),
])
def test_bad_filters_are_400_naming_the_field(api, query, field):
    response = api.get(f"/api/traces/?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and field in body["errors"]
    assert body["detail"].startswith(f"{field}: ")


def test_schema_lists_the_trace_paths(api):
    schema = api.get("/api/schema/?format=json").json()
    assert {"/api/trace/{id}/", "/api/traces/"} <= set(schema["paths"])
    assert set(schema["paths"]["/api/trace/{id}/"]) == {"get", "delete"}
    params = {p["name"] for p in schema["paths"]["/api/traces/"]["get"]["parameters"]}
    assert {"name", "min_duration", "max_duration", "since", "until", "status", "page"} <= params



def test_frames_stored_together_keep_the_one_by_one_outcome():
    """ingest_frames: what the websocket consumer does with frames that queued up."""
    first = json.dumps([trace_start(0), *span("a", "a", 1, 2)])
    bad = json.dumps([{"type": "EVENT", "timestamp": "x", "name": "e"}])
    later = json.dumps(span("b", "b", 3, 4))
    result, refused = ingest_frames(1, [first, bad, later])
    assert result.status == "open" and result.stored == 3
    assert str(refused) == "message 0 (EVENT): 'timestamp' must be a number, got a string \"x\""
    assert list(Span.objects.filter(trace_id=1).values_list("name", flat=True)) == ["a"]

    conflict = json.dumps([{"type": "SPAN_START", "timestamp": 9, "group_id": "a", "name": "a"}])
    result, refused = ingest_frames(1, [later, conflict, json.dumps([trace_end(10)])])
    assert "span 'a' was already started" in str(refused)
    assert Span.objects.filter(trace_id=1).count() == 2 and Trace.objects.get(id=1).is_open

    # The frame that decides the trace ends the batch: what follows is not stored.
    result, refused = ingest_frames(1, [json.dumps([trace_end(10)]), json.dumps(span("c", "c", 5, 6))])
    assert result.status == "complete" and refused is None
    assert Span.objects.filter(trace_id=1).count() == 2
    # Spans begun and ended across frames of one batch are one row.
    result, _ = ingest_frames(2, [json.dumps([trace_start(0), README_EXAMPLE[5]]),
                                  json.dumps([README_EXAMPLE[1]]), json.dumps([trace_end(9)])])
    assert result.status == "inconsistent"  # the span lies outside [0, 9]
    assert Span.objects.filter(trace_id=2).count() == 1


def nested_spans(depth):
    """A chain of `depth` spans, each inside the one before (group ids g0, g1, ...)."""
    starts = [{"type": "SPAN_START", "timestamp": 1 + level, "group_id": f"g{level}",
               "name": f"level {level}"} for level in range(depth)]
    ends = [{"type": "SPAN_END", "timestamp": 10_000 - level, "group_id": f"g{level}"}
            for level in reversed(range(depth))]
    return [trace_start(0), *starts, *ends, trace_end(10_001)]


@pytest.mark.parametrize("depth", [500, 3000])
def test_a_tree_of_any_depth_is_served(api, depth):
    assert store(40, nested_spans(depth)).finished
    response = api.get("/api/trace/40/")
    assert response.status_code == 200
    # Python's own decoder recurses too (browsers' JSON.parse does not): give it room here.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(3 * depth + 1000)
    try:
        node, levels = json.loads(response.content)["trace"], 0
    finally:
        sys.setrecursionlimit(limit)
    while node.get("children"):
        (node,) = node["children"]
        levels += 1
    assert levels == depth and node["name"] == f"level {depth - 1}"


@pytest.mark.parametrize("query, field", [
    ("min_duration=9e999999999", "min_duration"), ("min_duration=1e-999999999", "min_duration"),
    ("max_duration=1e21", "max_duration"), ("since=2024-01-01T00:00%2B20:23", None),
    ("since=0001-01-01T00:00%2B14:00", "since"), ("until=9999-12-31T23:59-14:00", "until"),
])
def test_extreme_filter_values_are_a_400_on_the_api_and_an_error_on_the_page(
        api, client, query, field):
    store(1, README_EXAMPLE)
    response = api.get(f"/api/traces/?{query}")
    if field is None:  # a zone PostgreSQL does not know, compared in UTC: a valid filter
        assert response.status_code == 200
    else:
        assert response.status_code == 400 and field in response.json()["errors"]
    page = client.get(f"/traces/?{query}")
    assert page.status_code == 200
    assert (b"errorlist" in page.content) == (field is not None)
