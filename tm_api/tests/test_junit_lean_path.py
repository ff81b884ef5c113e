"""POST /tm_api/junit/ on the lean ingest path (plumbing/ingest_path.py): a real server's
answers are those of the view on Django's full middleware stack (the test client), case by
case: tokens, refusals, gzip, Idempotency-Key; and the body limit's 413 before the view."""

import gzip

import pytest
import requests

from tm_api.auth import issue_token
from tm_api.models import Machine, Run

pytestmark = pytest.mark.integration

XML = b"<testsuite name='s'><testcase classname='c' name='t' time='0.5'/></testsuite>"
OTHER_XML = b"<testsuite name='s'><testcase classname='c' name='u'/></testsuite>"
HEADERS = ("Content-Type", "WWW-Authenticate", "Idempotent-Replayed", "Retry-After")


def cases(secret, other_secret):
    """(name, query, body, headers) of requests whose answers must not depend on the path."""
    auth = {"Authorization": f"Token {secret}"}
    xml = {**auth, "Content-Type": "application/xml"}
    return [
        ("no token", "?machine=rack-3", XML, {"Content-Type": "application/xml"}),
        ("malformed header", "?machine=rack-3", XML,
         {"Content-Type": "application/xml", "Authorization": "Token"}),
        ("unknown token", "?machine=rack-3", XML,
         {"Content-Type": "application/xml", "Authorization": "Token tm_nobody"}),
        ("another machine's token", "?machine=rack-3", XML,
         {"Content-Type": "application/xml", "Authorization": f"Token {other_secret}"}),
        ("no machine", "", XML, xml),
        ("JSON", "?machine=rack-3", XML, {**auth, "Content-Type": "application/json"}),
        ("empty body", "?machine=rack-3", b"", xml),
        ("malformed XML", "?machine=rack-3", b"<testsuite><testcase></testsuite>", xml),
        ("not a report", "?machine=rack-3", b"<html/>", xml),
        ("entities", "?machine=rack-3",
         b'<!DOCTYPE t [<!ENTITY x "y">]><testsuite name="&x;"/>', xml),
        ("imported", "?machine=RACK-3&branch=main", XML, xml),
        ("gzipped", "?machine=rack-3", gzip.compress(XML),
         {**xml, "Content-Encoding": "gzip"}),
        ("with a key", "?machine=rack-3", XML, {**xml, "Idempotency-Key": "K"}),
        ("replayed", "?machine=rack-3", XML, {**xml, "Idempotency-Key": "K"}),
        ("key reused", "?machine=rack-3", OTHER_XML, {**xml, "Idempotency-Key": "K"}),
    ]


def answer(status, body, headers):
    if isinstance(body, dict):
        body = {name: value for name, value in body.items() if name != "run"}
    return status, body, {name: headers.get(name) for name in HEADERS}


def test_the_lean_path_answers_every_case_as_the_full_stack_does(server_factory, client,
                                                                 settings):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = False
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="False", HTTP_MAX_BODY_BYTES="100000")
    rack = Machine.objects.create(machine_name="rack-3")
    _, secret = issue_token("rack", rack)
    _, other_secret = issue_token("other", Machine.objects.create(machine_name="other"))

    lean, full = [], []
    for name, query, body, headers in cases(secret, other_secret):
        # Keys are per path taken, so that each path's first use of K is its own.
        key = headers.get("Idempotency-Key")
        response = requests.post(f"{server.url}/tm_api/junit/{query}", data=body, timeout=30,
                                 headers={**headers, **({"Idempotency-Key": "lean-" + key}
                                                        if key else {})})
        assert "Set-Cookie" not in response.headers, name
        lean.append((name, answer(response.status_code, _json(response), response.headers)))

        django_headers = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()
                          if k != "Content-Type"}
        if key:
            django_headers["HTTP_IDEMPOTENCY_KEY"] = "full-" + key
        response = client.post(f"/tm_api/junit/{query}", body,
                               content_type=headers.get("Content-Type", ""), **django_headers)
        full.append((name, answer(response.status_code, _json(response), response.headers)))

    assert lean == full
    statuses = dict((name, status) for name, (status, _, _) in lean)
    assert statuses == {
        "no token": 401, "malformed header": 401, "unknown token": 401,
        "another machine's token": 403, "no machine": 400, "JSON": 415, "empty body": 400,
        "malformed XML": 400, "not a report": 400, "entities": 400, "imported": 201,
        "gzipped": 201, "with a key": 201, "replayed": 201, "key reused": 422}
    assert dict(lean)["replayed"][2]["Idempotent-Replayed"] == "true"
    # Imported, gzipped and with a key, on each path: one run each, none for the replay.
    assert Run.objects.count() == 6

    # A body over HTTP_MAX_BODY_BYTES: 413 in the API's shape before the view reads it.
    big = b"<testsuite>" + b" " * 200_000 + b"</testsuite>"
    response = requests.post(f"{server.url}/tm_api/junit/?machine=rack-3", data=big, timeout=30,
                             headers={"Content-Type": "application/xml",
                                      "Authorization": f"Token {secret}"})
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert Run.objects.count() == 6


def _json(response):
    try:
        return response.json()
    except ValueError:
        return response.content
