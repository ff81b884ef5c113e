"""A real daphne process on Redis: a machine's POST is seen by a real websocket client."""

import json
import time
import uuid

import pytest
import requests
import websocket

from tm_api.tests.conftest import dry_run_payload, scenario

pytestmark = pytest.mark.integration


def test_a_stop_posted_over_http_reaches_a_websocket_client_through_redis(server_factory,
                                                                            redis_url):
    server = server_factory(REDIS_URL=redis_url, DASHBOARDS_PUBLIC="True",
                            TM_ALLOW_ANONYMOUS_MACHINES="True",
                            REDIS_PREFIX=f"tm-live-test-{uuid.uuid4().hex[:8]}")
    payload = dry_run_payload("Live Rack", scenarios=[scenario("s.py", ("/t", "a.py"))])
    assert requests.post(server.url + "/tm_api/dry_run/", json=payload, timeout=5).status_code == 201
    machine = requests.get(server.url + "/tm_api/machines/", timeout=5).json()["results"][0]
    last = websocket.create_connection(f"{server.ws_url}/ws/machine/{machine['id']}/last/",
                                       timeout=5)
    status = websocket.create_connection(f"{server.ws_url}/ws/machine/status/", timeout=5)
    try:
        assert json.loads(last.recv())["machine_data"]["delta"] is False  # the run as it is
        start = {"machine_name": "live rack", "file_path": "/t", "file_name": "a.py"}
        assert requests.post(server.url + "/tm_api/test_start/", json=start,
                             timeout=5).status_code == 202
        assert json.loads(status.recv())["machine_id_status"]["status"] == "running"
        json.loads(last.recv())
        sent = time.monotonic()
        response = requests.post(server.url + "/tm_api/test_stop/",
                                 json={**start, "status": "failed"}, timeout=5)
        assert response.status_code == 202
        frame = json.loads(last.recv())
        assert time.monotonic() - sent < 2
        master = frame["machine_data"]["last_master_scenario"]
        assert master["status"] == "failed" and master["tests_statistics"]["failed"] == 1
        assert frame["machine_data"]["delta"] is True
        machine_status = json.loads(status.recv())["machine_id_status"]
        assert machine_status["version"] > machine["version"]
        assert machine_status == {**machine, "status": "failed",
                                  "tests_statistics": master["tests_statistics"],
                                  "version": machine_status["version"]}
    finally:
        last.close()
        status.close()


def test_without_a_token_the_server_answers_401_when_anonymous_machines_are_off(server_factory):
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="False")
    response = requests.post(server.url + "/tm_api/dry_run/", json=dry_run_payload(), timeout=5)
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
