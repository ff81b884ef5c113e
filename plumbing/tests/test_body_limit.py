"""The request body limit of docs/limits.md (plumbing/body_limit.py) against a real server
process: a body under the limit still passes, one over it gets the answer the document promises."""

import json
import uuid

import pytest
import requests

from plumbing.tests.limited import dry_run, limited_server

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_request_bodies_over_the_limit_get_413_naming_the_setting(server_factory):
    server = limited_server(server_factory, HTTP_MAX_BODY_BYTES=4000)
    detail = "Request body larger than 4000 bytes (HTTP_MAX_BODY_BYTES); send less in one request."

    under = dry_run(script="x" * 3000)
    assert len(json.dumps(under)) < 4000
    assert requests.post(server.url + "/tm_api/dry_run/", json=under).status_code == 201

    over = dry_run(script="x" * 4000)
    for path in ("/tm_api/dry_run/", "/api/tracking/ingest/", "/tracking/" + str(uuid.uuid4())):
        response = requests.post(server.url + path, json=over,
                                 headers={"Authorization": "Bearer rat_whatever"})
        assert response.status_code == 413, path
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"detail": detail, "code": "too_large"}, path

    # Without Content-Length (chunked), counted as it is read.
    chunks = (json.dumps(over)[i:i + 1000].encode() for i in range(0, 5000, 1000))
    response = requests.post(server.url + "/tm_api/dry_run/", data=chunks,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    small_chunks = (json.dumps(under)[i:i + 1000].encode() for i in range(0, 4000, 1000))
    response = requests.post(server.url + "/tm_api/dry_run/", data=small_chunks,
                             headers={"Content-Type": "application/json"})
    # Under the limit it reaches the view (which, as DRF does, reads no body without a
    # Content-Length: a 400 naming the missing fields).
    assert response.status_code == 400 and response.json()["code"] == "invalid", response.text

    # Pages (not the API) get the sentence as text.
    response = requests.post(server.url + "/login/", data={"username": "x" * 5000})
    assert response.status_code == 413 and response.text == detail
    assert requests.get(server.url + "/healthz").status_code == 200
