"""Writes per second per credential (plumbing/throttles.py, docs/limits.md) against real server
processes: a bucket per token, shared by the processes through Redis."""

import time
import uuid

import pytest
import requests

from plumbing.tests.limited import dry_run, limited_server

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_writes_over_the_rate_get_429_with_retry_after_per_token(server_factory):
    from tm_api.auth import issue_token
    from tracking.models import Project

    _, machine_a = issue_token("team a")
    _, machine_b = issue_token("team b")
    project, project_token = Project.create_with_token("Shop")
    server = limited_server(
        server_factory, RATE_LIMIT_MACHINE_TOKEN=2, RATE_LIMIT_MACHINE_TOKEN_BURST=3,
        RATE_LIMIT_PROJECT_TOKEN=2, RATE_LIMIT_PROJECT_TOKEN_BURST=3,
        RATE_LIMIT_CLIENT=2, RATE_LIMIT_CLIENT_BURST=3,
    )

    def post(path, token=None, body=None):
        headers = {"Authorization": f"Token {token}"} if token else {}
        return requests.post(server.url + path, json=body or dry_run(), headers=headers)

    def assert_throttled(response, setting, who):
        assert response.status_code == 429, response.text
        assert response.headers["Retry-After"] == "1"
        assert response.json() == {"code": "throttled", "detail": (
            f"Too many requests from {who}: more than 2 a second ({setting}, bursts of 3: "
            f"{setting}_BURST). Expected available in 1 second.")}

    assert [post("/tm_api/dry_run/", machine_a).status_code for _ in range(3)] == [201] * 3
    assert_throttled(post("/tm_api/dry_run/", machine_a), "RATE_LIMIT_MACHINE_TOKEN",
                     "this machine token")
    assert post("/tm_api/dry_run/", machine_b).status_code == 201  # a bucket per token
    for _ in range(5):  # reads are not throttled
        assert requests.get(server.url + "/tm_api/machines/").status_code == 200
    time.sleep(0.6)  # half a second buys one more at 2 a second
    assert post("/tm_api/dry_run/", machine_a).status_code == 201

    # Project tokens: in the header (batch) and in the legacy tracker's body share the token's bucket.
    batch = {"events": [{"path": "/", "status": 200, "duration_ms": 1.0,
                         "received_at": "2024-01-01T00:00:00Z"}]}
    seed = {"project_token": project_token, "event_type": "page_view", "event_data": {}}
    headers = {"Authorization": f"Bearer {project_token}"}
    codes = [requests.post(server.url + "/api/tracking/ingest/", json=batch,
                           headers=headers).status_code for _ in range(2)]
    codes.append(requests.post(f"{server.url}/tracking/{project.public_id}", json=seed).status_code)
    assert 429 not in codes, codes
    assert_throttled(requests.post(f"{server.url}/tracking/{project.public_id}", json=seed),
                     "RATE_LIMIT_PROJECT_TOKEN", "this project token")

    # No token (anonymous machines in development): per client address.
    codes = [post("/tm_api/dry_run/").status_code for _ in range(3)]
    assert codes == [201] * 3
    assert_throttled(post("/tm_api/dry_run/"), "RATE_LIMIT_CLIENT", "this client")


def test_write_budget_is_shared_by_server_processes_through_redis(server_factory, redis_url):
    from tm_api.auth import issue_token

    _, token = issue_token("team")
    limits = {"REDIS_URL": redis_url, "REDIS_PREFIX": f"limits-{uuid.uuid4().hex[:8]}",
              "RATE_LIMIT_MACHINE_TOKEN": "0.2", "RATE_LIMIT_MACHINE_TOKEN_BURST": "3"}
    first = limited_server(server_factory, **limits)
    second = limited_server(server_factory, **limits)

    def post(server):
        return requests.post(server.url + "/tm_api/dry_run/", json=dry_run(),
                             headers={"Authorization": f"Token {token}"}).status_code

    assert [post(first), post(second), post(first)] == [201, 201, 201]
    assert [post(second), post(first)] == [429, 429]
