"""Both wire formats into one service: valid, wrong token, malformed, partial batches, scrubbing."""

import gzip
import json

import pytest

from tracking.models import Project, RequestMetric, RequestRollup
from tracking.tests.conftest import batch_event, gzip_json, seed_body

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

CREDENTIALS = {
    "Cookie": "sessionid=abc", "Authorization": "Bearer xyz", "Proxy-Authorization": "Basic x",
    "X-Api-Key": "k", "X-Auth-Token": "t", "X-Session-Id": "s", "X-Password": "p",
    "X-Client-Secret": "s", "X-CSRFToken": "c", "Set-Cookie": "a=b",
}


def post_seed(client, project, body):
    return client.post(f"/tracking/{project.public_id}", json.dumps(body),
                       content_type="application/json")


def post_batch(client, token, payload, gzipped=True, **headers):
    body = gzip_json(payload) if gzipped else json.dumps(payload).encode()
    extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    if gzipped:
        extra["HTTP_CONTENT_ENCODING"] = "gzip"
    extra.update(headers)
    return client.post("/api/tracking/ingest/", body, content_type="application/json", **extra)


def test_seed_event_is_stored_with_path_and_query_split(client, project_and_token):
    project, token = project_and_token
    response = post_seed(client, project, seed_body(token))
    assert response.status_code == 201, response.content
    assert response.json()["accepted"] == 1
    row = RequestMetric.objects.get()
    assert (row.path, row.query, row.view_name, row.status_code) == (
        "/cart/", "item=3&page=2", "home", 200)
    assert row.duration_ms == pytest.approx(12.345678)
    assert row.session_id == "0f3c5d0e9a7b4c1d8e2f3a4b5c6d7e8f"
    assert row.user_agent == "Mozilla/5.0 Test"
    assert row.method == "" and row.client_ip is None  # the legacy tracker sends neither
    assert row.headers == {"Host": "shop.example", "Content-Type": "text/plain",
                           "Content-Length": ""}


def test_seed_path_has_no_trailing_slash_and_no_redirect(client, project_and_token):
    project, token = project_and_token
    response = client.post(f"/tracking/{project.public_id}/", json.dumps(seed_body(token)),
                           content_type="application/json")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"


def test_seed_wrong_or_missing_token_and_unknown_project(client, project_and_token):
    project, token = project_and_token
    assert post_seed(client, project, seed_body("rat_wrong")).status_code == 403
    missing = post_seed(client, project, {**seed_body(token), "project_token": ""})
    assert missing.status_code == 401
    other, _ = Project.create_with_token("Other")
    assert post_seed(client, other, seed_body(token)).status_code == 403
    unknown = client.post("/tracking/not-a-project", json.dumps(seed_body(token)),
                          content_type="application/json")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    assert not RequestMetric.objects.exists()


@pytest.mark.parametrize("change, field", [
    ({"response_data": {"status_code": "200"}}, "event_data.response_data.status_code"),
    ({"processing_time_ns": None}, "event_data.processing_time_ns"),
    ({"time_request_received_ns": 1234}, "event_data.time_request_received_ns"),
    ({"full_url": ""}, "event_data.full_url"),
])
def test_seed_malformed_event_names_the_field(client, project_and_token, change, field):
    project, token = project_and_token
    response = post_seed(client, project, seed_body(token, **change))
    assert response.status_code == 400
    assert response.json()["detail"].startswith(field) and field in response.json()["errors"]
    not_json = client.post(f"/tracking/{project.public_id}", "{", content_type="application/json")
    assert not_json.status_code == 400
    wrong_type = post_seed(client, project, {**seed_body(token), "event_type": "click"})
    assert wrong_type.status_code == 400 and "event_type" in wrong_type.json()["errors"]


def test_batch_is_stored_and_counted(client, project_and_token):
    project, token = project_and_token
    events = [batch_event(), batch_event(path="/b", status=500, view="b"),
              batch_event(path="/c?x=1", query=None, status=404)]
    response = post_batch(client, token, {"project_id": str(project.public_id),
                                          "events": events, "dropped": 7})
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 3, "rejected": 0, "rejected_events": []}
    rows = {r.path: r for r in RequestMetric.objects.all()}
    assert rows["/api/items/"].method == "GET" and rows["/api/items/"].client_ip == "203.0.113.9"
    assert rows["/api/items/"].response_size == 512 and rows["/c"].query == "x=1"
    project.refresh_from_db()
    assert project.dropped_by_clients == 7
    minute_total = sum(RequestRollup.objects.filter(period_seconds=60).values_list("count", flat=True))
    hour_total = sum(RequestRollup.objects.filter(period_seconds=3600).values_list("count", flat=True))
    assert minute_total == hour_total == 3
    assert sum(RequestRollup.objects.filter(period_seconds=60).values_list("server_errors", flat=True)) == 1


def test_batch_without_gzip_is_accepted_too(client, project_and_token):
    _, token = project_and_token
    response = post_batch(client, token, {"events": [batch_event()]}, gzipped=False)
    assert response.status_code == 200 and response.json()["accepted"] == 1


def test_partial_batch_keeps_good_events_and_reports_bad_ones(client, project_and_token):
    _, token = project_and_token
    events = [batch_event(), batch_event(status=999), batch_event(duration_ms="slow"),
              "not an object", batch_event(path="/ok2")]
    response = post_batch(client, token, {"events": events})
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2 and body["rejected"] == 3
    assert [(r["index"], r["field"]) for r in body["rejected_events"]] == [
        (1, "status"), (2, "duration_ms"), (3, "body")]
    assert RequestMetric.objects.count() == 2


def test_batch_of_only_bad_events_is_a_400_naming_the_field(client, project_and_token):
    _, token = project_and_token
    response = post_batch(client, token, {"events": [batch_event(time="yesterday")]})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("events[0].time")
    assert "events[0].time" in response.json()["errors"]
    for payload in ({"events": "nope"}, [1, 2], {}):
        bad = post_batch(client, token, payload)
        assert bad.status_code == 400 and "events" in bad.json()["errors"]
    assert not RequestMetric.objects.exists()


def test_batch_authentication(client, project_and_token):
    project, token = project_and_token
    payload = {"events": [batch_event()]}
    assert post_batch(client, None, payload).status_code == 401
    assert post_batch(client, "rat_wrong", payload).status_code == 403
    other, _ = Project.create_with_token("Other")
    mismatch = post_batch(client, token, {**payload, "project_id": str(other.public_id)})
    assert mismatch.status_code == 403
    # Rotation: the old token stops working at once.
    from tracking.services import rotate_token

    new = rotate_token(project)
    assert post_batch(client, token, payload).status_code == 403
    assert post_batch(client, new, payload).status_code == 200


def test_batch_limits(client, project_and_token, settings):
    _, token = project_and_token
    settings.TRACKING_MAX_BATCH_EVENTS = 3
    assert post_batch(client, token, {"events": [batch_event()] * 4}).status_code == 413
    settings.TRACKING_MAX_BATCH_BYTES = 10_000
    bomb = gzip.compress(b'{"events": [' + b" " * 1_000_000 + b"]}")
    response = client.post("/api/tracking/ingest/", bomb, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413
    garbage = client.post("/api/tracking/ingest/", b"not gzip", content_type="application/json",
                          HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_CONTENT_ENCODING="gzip")
    assert garbage.status_code == 400 and "body" in garbage.json()["errors"]


def test_no_credential_header_is_ever_stored(client, project_and_token):
    project, token = project_and_token
    seed_headers = {"HTTP_" + name.upper().replace("-", "_"): v for name, v in CREDENTIALS.items()}
    post_seed(client, project, seed_body(token, header_data={**seed_headers, "HTTP_X_TRACE": "1"}))
    post_batch(client, token, {"events": [batch_event(headers={**CREDENTIALS, "X-Trace": "2"},
                                                      query="q=1&access_token=s3cr3t")]})
    rows = list(RequestMetric.objects.all())
    assert len(rows) == 2
    for row in rows:
        assert set(row.headers) == {"X-Trace"}
        stored = json.dumps(row.headers) + row.query
        for value in ("sessionid", "Bearer", "s3cr3t", "Basic"):
            assert value not in stored
    assert "access_token=%5Bscrubbed%5D" in RequestMetric.objects.get(query__startswith="q=").query


# --- hostile values: one bad event is named in rejected_events, the good ones are stored --------

HOSTILE_EVENTS = {
    "NUL in path": dict(path="/a\x00b"),
    "NUL in query": dict(query="a=\x00"),
    "NUL in view": dict(view="v\x00"),
    "NUL in user agent": dict(user_agent="curl\x00"),
    "NUL in session": dict(session_id="s\x00"),
    "NUL in method": dict(method="G\x00T"),
    "NUL in a header name": dict(headers={"X-A\x00": "1"}),
    "NUL in a header value": dict(headers={"X-A": "1\x00"}),
    "lone surrogate in path": dict(path="/\ud800"),
    "lone surrogate in a header value": dict(headers={"X-A": "\udfff"}),
    "response_size 10**20": dict(response_size=10**20),
    "response_size 1e300": dict(response_size=1e300),
    "response_size of 401 digits": dict(response_size=10**400),
    "time of 401 digits": dict(time=10**400),
    "duration of 401 digits": dict(duration_ms=10**400),
}


@pytest.mark.parametrize("change", HOSTILE_EVENTS.values(), ids=HOSTILE_EVENTS.keys())
def test_one_hostile_event_is_rejected_by_name_and_the_other_hundred_are_stored(
        client, project_and_token, change):
    _, token = project_and_token
    events = [batch_event(path=f"/ok/{number}") for number in range(100)]
    events.insert(50, batch_event(**change))
    response = post_batch(client, token, {"events": events})
    assert response.status_code == 200, response.content[:500]
    body = response.json()
    assert body["accepted"] == 100 and body["rejected"] == 1
    (rejected,) = body["rejected_events"]
    assert rejected["index"] == 50 and rejected["field"].split(".")[0] in {
        "path", "query", "view", "user_agent", "session_id", "method", "headers",
        "response_size", "time", "duration_ms"}, rejected
    assert RequestMetric.objects.count() == 100


def test_an_absurd_dropped_count_is_a_400_and_stores_nothing(client, project_and_token):
    _, token = project_and_token
    response = post_batch(client, token, {"events": [batch_event()], "dropped": 10**20})
    assert response.status_code == 400 and "dropped" in response.json()["errors"]
    assert RequestMetric.objects.count() == 0


@pytest.mark.parametrize("field, value", [
    ("full_url", "http://shop.example/\x00"), ("full_url", "http://shop.example/\ud800"),
    ("view_name", "v\x00"), ("view_name", "\ud800"),
    ("header_data", {"HTTP_X_A": "\x00"}), ("header_data", {"HTTP_X_\ud800": "1"}),
    ("time_request_received_ns", 10**400),
])
def test_the_seed_route_answers_400_for_hostile_values(client, project_and_token, field, value):
    project, token = project_and_token
    body = seed_body(token)
    body["event_data"][field] = value
    response = post_seed(client, project, body)
    assert response.status_code == 400, response.content[:500]
    assert response.json()["code"] == "invalid"
    assert RequestMetric.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_add_up_exactly_in_the_cells_they_share():
    """Eight threads, each with its own connection, store batches into the same minute, hour
    and day cells at once: no batch fails (a deadlock would be retried, a lost update would
    show), and every cell holds the exact count, errors, duration sum and histogram of the
    requests stored into it, as rollup_cells computes them from all the events at once."""
    import random
    import threading

    from tracking import aggregation as agg
    from tracking import services
    from tracking.models import RequestSeriesRollup
    from tracking.wire import RequestEvent

    project, _ = Project.create_with_token("Busy shop")
    rng = random.Random(7)
    base = 1_764_000_000.0  # 2025-11-24 16:00 UTC: batches straddle a minute boundary
    batches = [[RequestEvent(
        timestamp=base + 50 + rng.random() * 20, duration_ms=rng.choice([0.4, 3, 12, 250, 4000]),
        method="GET", path="/orders/1", query="", view_name=rng.choice(["orders", "stock"]),
        status_code=rng.choice([200, 200, 404, 503])) for _ in range(40)] for _ in range(48)]
    errors = []

    def store(mine):
        try:
            for batch in mine:
                services.ingest_events(project, batch)
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)
        finally:
            from django.db import connection
            connection.close()

    threads = [threading.Thread(target=store, args=(batches[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    facts = [(e.timestamp, e.view_name, e.duration_ms, e.status_code)
             for batch in batches for e in batch]
    for period in (RequestRollup.MINUTE, RequestRollup.HOUR, RequestRollup.DAY):
        expected = {(start, view): cell for (start, view), cell in
                    agg.rollup_cells(facts, period).items()}
        stored = {(int(row.period_start.timestamp()), row.view_name): row for row in
                  RequestRollup.objects.filter(project=project, period_seconds=period)}
        assert set(stored) == set(expected)
        for key, cell in expected.items():
            row = stored[key]
            assert (row.count, row.client_errors, row.server_errors) == (
                cell.count, cell.client_errors, cell.server_errors)
            assert row.duration_sum_ms == pytest.approx(cell.duration_sum_ms)
            assert {int(k): v for k, v in row.histogram.items()} == cell.histogram
    minutes = RequestSeriesRollup.objects.filter(project=project, period_seconds=60)
    assert minutes.count() == 2 and sum(row.count for row in minutes) == 48 * 40
    assert RequestMetric.objects.filter(project=project).count() == 48 * 40


def test_a_batch_of_thousands_of_distinct_cells_is_counted_whole(project_and_token):
    """The largest batch, every event in a minute and a view of its own: 5,000 cells per period,
    upserted in many statements (each within the parameters a statement may take), each cell
    counted once."""
    from tracking import services
    from tracking.models import RequestSeriesRollup
    from tracking.wire import RequestEvent

    project, _ = project_and_token
    events = [RequestEvent(timestamp=1_764_000_000.0 + 60 * n, duration_ms=5, method="GET",
                           path=f"/p/{n}", view_name=f"view{n}", status_code=200)
              for n in range(5000)]
    assert services.ingest_events(project, events) == 5000
    for period, cells in ((RequestRollup.MINUTE, 5000), (RequestRollup.HOUR, 5000),
                          (RequestRollup.DAY, 5000)):
        rows = RequestRollup.objects.filter(project=project, period_seconds=period)
        assert rows.count() == cells
        assert {row.count for row in rows} == {1}
    hours = RequestSeriesRollup.objects.filter(project=project, period_seconds=3600)
    assert hours.count() == 84 and sum(hours.values_list("count", flat=True)) == 5000
