"""Read API: summary from rollups (checked against the raw rows) and the filtered request list."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from tracking import aggregation as agg
from tracking import services
from tracking.models import Project
from tracking.wire import parse_batch_event

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

NOW = time.time()


def event(seconds_ago, view="home", status=200, duration=10.0, path="/"):
    return parse_batch_event({"time": NOW - seconds_ago, "duration_ms": duration, "path": path,
                              "status": status, "view": view, "method": "GET"})


@pytest.fixture
def project(db):
    project, _ = Project.create_with_token("Shop")
    services.ingest_events(project, [
        event(30, duration=5), event(40, duration=15), event(50, status=500, duration=400,
                                                             view="checkout", path="/pay"),
        event(3 * 3600, status=404, duration=2, path="/missing", view=""),
        event(26 * 3600, duration=50, view="home"),
    ])
    return project


def test_summary_needs_login(client, project, settings):
    url = f"/api/tracking/projects/{project.public_id}/summary/"
    assert client.get(url).status_code == 403
    settings.DASHBOARDS_PUBLIC = True
    assert client.get(url).status_code == 200


def test_summary_all_time_and_windows(admin_client, project):
    url = f"/api/tracking/projects/{project.public_id}/summary/"
    body = admin_client.get(url).json()
    assert body["count"] == 5 and body["server_errors"] == 1 and body["client_errors"] == 1
    assert body["error_rate"] == pytest.approx(0.2)
    assert body["series"]["step_seconds"] == 3600
    assert sum(p["count"] for p in body["series"]["points"]) == 5
    exact_p50 = 15.0  # sorted 2, 5, 15, 50, 400 -> 3rd
    assert abs(body["p50_ms"] - exact_p50) <= agg.RELATIVE_ERROR * exact_p50
    assert abs(body["p99_ms"] - 400) <= agg.RELATIVE_ERROR * 400
    views = {v["view_name"]: v for v in body["views"]}
    assert views["home"]["count"] == 3 and views["checkout"]["error_rate"] == 1.0

    last_hour = admin_client.get(url, {"last": "1h"}).json()
    assert last_hour["count"] == 3 and last_hour["series"]["step_seconds"] == 60
    assert len(last_hour["series"]["points"]) in (60, 61)
    since = datetime.fromtimestamp(NOW - 4 * 3600, UTC).isoformat()
    assert admin_client.get(url, {"since": since}).json()["count"] == 4


def test_summary_bad_parameters(admin_client, project):
    url = f"/api/tracking/projects/{project.public_id}/summary/"
    bad = admin_client.get(url, {"last": "2y"})
    assert bad.status_code == 400 and "last" in bad.json()["errors"]
    assert admin_client.get(url, {"since": "yesterday"}).status_code == 400
    assert admin_client.get(url, {"since": "2024-01-02T00:00:00Z",
                                  "until": "2024-01-01T00:00:00Z"}).status_code == 400
    missing = admin_client.get("/api/tracking/projects/00000000-0000-0000-0000-000000000000/summary/")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_summary_of_a_project_without_requests(admin_client):
    project, _ = Project.create_with_token("Empty")
    body = admin_client.get(f"/api/tracking/projects/{project.public_id}/summary/").json()
    assert body["count"] == 0 and body["p95_ms"] is None and body["views"] == []


def test_request_list_filters_and_pagination(admin_client, project):
    url = f"/api/tracking/projects/{project.public_id}/requests/"
    body = admin_client.get(url, {"page_size": 2}).json()
    assert body["count"] == 5 and body["total_pages"] == 3 and len(body["results"]) == 2
    assert body["results"][0]["duration_ms"] == 5  # newest first
    assert admin_client.get(url, {"status": "5xx"}).json()["count"] == 1
    assert admin_client.get(url, {"status": "404"}).json()["results"][0]["path"] == "/missing"
    assert admin_client.get(url, {"path": "/pa"}).json()["count"] == 1
    assert admin_client.get(url, {"view": "checkout"}).json()["count"] == 1
    assert admin_client.get(url, {"min_duration_ms": 15}).json()["count"] == 3
    assert admin_client.get(url, {"last": "1h"}).json()["count"] == 3
    bad = admin_client.get(url, {"status": "teapot"})
    assert bad.status_code == 400 and "status" in bad.json()["errors"]


def test_project_list(admin_client, project):
    body = admin_client.get("/api/tracking/projects/").json()
    assert body["results"][0]["id"] == str(project.public_id)
    assert "token" not in body["results"][0]


def test_endpoints_are_in_the_openapi_schema(admin_client):
    paths = admin_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    for path in ("/api/tracking/ingest/", "/api/tracking/projects/{project_id}/summary/",
                 "/api/tracking/projects/{project_id}/requests/", "/tracking/{project_id}"):
        assert path in paths, path


def test_windows_far_in_the_past_are_refused_or_bounded(admin_client, project):
    """Found by the API fuzzer: `until` near year 1 overflowed (500), and `since` in year 352
    made the series one point per hour since then (minutes of work)."""
    summary = f"/api/tracking/projects/{project.public_id}/summary/"
    requests = f"/api/tracking/projects/{project.public_id}/requests/"
    response = admin_client.get(requests, {"last": "1h", "until": "0001-01-01T00:03:02Z"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("until: must be between 1970-01-01")
    assert admin_client.get(summary, {"since": "0352-02-17T12:00:11Z"}).status_code == 400
    body = admin_client.get(summary, {"since": "1970-01-01T00:00:00Z"}).json()
    assert body["count"] == 5
    # From the day of the first stored request (data spans 26 h), not hourly since 1970.
    assert len(body["series"]["points"]) <= 50


def test_a_request_from_long_ago_does_not_make_the_series_huge(admin_client, project):
    """Found by the API fuzzer: ingest accepts requests back to 2000 and the default window
    starts at the first one, so one old request made 230,000 hourly points (over 10 s)."""
    from tracking import services
    from tracking.wire import RequestEvent

    services.ingest_events(project, [RequestEvent(timestamp=946_771_200.0, duration_ms=5,
                                                  path="/old", status_code=200)])
    body = admin_client.get(f"/api/tracking/projects/{project.public_id}/summary/").json()
    points = body["series"]["points"]
    assert body["series"]["step_seconds"] % 86400 == 0 and len(points) <= 2001
    assert sum(p["count"] for p in points) == body["count"]


def test_request_list_reads_the_summarys_window(admin_client, project):
    """The page's card and table agree: the list widens a window to whole minutes as the
    summary does (a request early in the first minute was counted but not listed)."""
    minute = datetime.fromtimestamp(NOW - 3600, UTC).replace(second=0, microsecond=0)
    services.ingest_events(project, [parse_batch_event(
        {"time": minute.timestamp() + 0.25, "duration_ms": 1, "path": "/early", "status": 200,
         "view": "home"})])
    window = {"since": (minute + timedelta(seconds=30)).isoformat()}  # mid-minute
    summary = admin_client.get(f"/api/tracking/projects/{project.public_id}/summary/",
                               window).json()
    requests = admin_client.get(f"/api/tracking/projects/{project.public_id}/requests/",
                                window).json()
    assert requests["count"] == summary["count"] == 4
    assert "/early" in [r["path"] for r in requests["results"]]
    same = admin_client.get(f"/api/tracking/projects/{project.public_id}/requests/",
                            {"since": summary["since"], "until": summary["until"]}).json()
    assert same["count"] == summary["count"]
    last_hour = admin_client.get(f"/api/tracking/projects/{project.public_id}/requests/",
                                 {"last": "1h"}).json()
    assert last_hour["count"] == admin_client.get(
        f"/api/tracking/projects/{project.public_id}/summary/", {"last": "1h"}).json()["count"]


def test_request_list_sorts_by_a_column_and_refuses_an_unknown_one(admin_client, project):
    url = f"/api/tracking/projects/{project.public_id}/requests/"

    def durations(params):
        return [r["duration_ms"] for r in admin_client.get(url, params).json()["results"]]

    assert durations({"sort": "duration"}) == [2, 5, 15, 50, 400]
    assert durations({"sort": "-duration"}) == [400, 50, 15, 5, 2]
    assert durations({"sort": "-status"})[:2] == [400, 2]  # 500, then 404
    # Equal paths ("/"): ids break the tie, in the direction asked for.
    ids = [r["id"] for r in admin_client.get(url, {"sort": "path"}).json()["results"]]
    assert ids[:3] == sorted(ids[:3])
    ids = [r["id"] for r in admin_client.get(url, {"sort": "-path"}).json()["results"]]
    assert ids[-3:] == sorted(ids[-3:], reverse=True)
    bad = admin_client.get(url, {"sort": "client_ip"})
    assert bad.status_code == 400 and "sort" in bad.json()["errors"]
