"""plumbing/ingest_path.py: machine traffic takes the lean path (no session, CSRF, messages
or login middleware; refusals that need no database answered on the event loop), pages keep
Django's full stack; under both servers (plumbing.serve: uvicorn and daphne)."""

import json

import pytest
import requests
import websocket
from channels.testing import HttpCommunicator
from django.core.exceptions import ImproperlyConfigured

from plumbing.ingest_path import ByPath
from plumbing.library_internals.django_asgi_handler import IngestHandler
from trace_project.asgi import application

SERVERS = ["uvicorn", "daphne"]
MALFORMED = b'{"machine_name": "m1", "file_path": '
PARSE_ERROR = {"detail": "JSON parse error - Expecting value: line 1 column 37 (char 36)",
               "code": "parse_error"}
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                    "Cross-Origin-Opener-Policy": "same-origin", "X-Frame-Options": "DENY"}
HTTPS = {"X-Forwarded-Proto": "https"}


# --- which requests take it ---------------------------------------------------------------------

@pytest.mark.unit
async def test_ingest_paths_go_to_the_lean_handler_and_the_rest_to_the_full_one():
    taken = []

    def app(name):
        async def record(scope, receive, send):
            taken.append((scope.get("path"), name))
        return record

    router = ByPath(app("lean"), app("full"))
    for path in ("/tm_api/test_start/", "/tm_api/dry_run/", "/tm_api/test_stop/",
                 "/tm_api/batch/", "/tm_api/junit/", "/api/tracking/ingest/", "/tracking/0f1e",
                 "/v1/traces", "/tm_api/test_start", "/tm_api/machines/", "/metrics/", "/login/",
                 "/healthz"):
        await router({"type": "http", "path": path}, None, None)
    await router({"type": "websocket", "path": "/tracking/x"}, None, None)
    assert [name for _, name in taken] == ["lean"] * 8 + ["full"] * 6


@pytest.mark.unit
def test_a_middleware_that_would_hop_to_threads_is_refused_on_the_lean_path(settings):
    settings.INGEST_MIDDLEWARE = ["django.middleware.security.SecurityMiddleware"]
    with pytest.raises(ImproperlyConfigured, match="not async-native"):
        IngestHandler()


# --- answered on the event loop, without the database ------------------------------------------
# No django_db mark: a query on these paths would fail the test ("Database access not allowed").

async def post(path, body, headers=()):
    communicator = HttpCommunicator(application, "POST", path, body=body, headers=[
        (b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()), *headers])
    response = await communicator.get_response()
    return response["status"], json.loads(response["body"]), dict(response["headers"])


@pytest.mark.unit
async def test_a_malformed_report_is_answered_400_without_looking_the_token_up(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    status, body, headers = await post("/tm_api/test_start/", MALFORMED,
                                       [(b"authorization", b"Token tm_not-looked-up")])
    assert (status, body) == (400, PARSE_ERROR)
    assert headers[b"Content-Length"] == str(len(json.dumps(body, separators=(",", ":")))).encode()
    assert b"Set-Cookie" not in headers


@pytest.mark.unit
async def test_a_junit_report_without_a_token_is_401_on_the_loop_unread(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.TM_ALLOW_ANONYMOUS_MACHINES = False
    communicator = HttpCommunicator(application, "POST", "/tm_api/junit/?machine=m", body=b"<x",
                                    headers=[(b"host", b"127.0.0.1"),
                                             (b"content-type", b"application/xml")])
    response = await communicator.get_response()
    assert response["status"] == 401
    assert json.loads(response["body"])["code"] == "not_authenticated"


@pytest.mark.unit
async def test_a_report_without_a_token_or_with_a_malformed_one_is_401_on_the_loop(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.TM_ALLOW_ANONYMOUS_MACHINES = False
    status, body, headers = await post("/tm_api/dry_run/", b"{}")
    assert status == 401 and body["code"] == "not_authenticated"
    assert headers[b"WWW-Authenticate"] == b'Token realm="machines"'
    status, body, _ = await post("/tm_api/dry_run/", b"{}", [(b"authorization", b"Basic abc")])
    assert (status, body["code"]) == (401, "authentication_failed")


@pytest.mark.unit
async def test_the_seed_trackers_route_and_batches_refuse_on_the_loop(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    status, body, _ = await post("/tracking/0f1e2d3c-0000-0000-0000-000000000000", MALFORMED)
    assert (status, body) == (400, PARSE_ERROR)
    status, body, _ = await post("/api/tracking/ingest/", b'{"events": []}')
    assert (status, body["code"]) == (401, "not_authenticated")


# --- under each server --------------------------------------------------------------------------

@pytest.fixture(params=SERVERS)
def served(request, server_factory):
    """A server behind an HTTPS proxy (X-Forwarded-Proto), with HSTS and the HTTPS redirect."""
    return server_factory(MONITOR_SERVER=request.param, SECURE_HTTPS="True",
                          TRUST_X_FORWARDED_PROTO="True", ALLOWED_HOSTS="127.0.0.1")


@pytest.mark.integration
def test_machine_traffic_gets_security_headers_and_never_a_cookie(served):
    from tm_api.auth import issue_token

    _, secret = issue_token("lean path")
    token = {"Authorization": f"Token {secret}", **HTTPS}
    cookies = {"sessionid": "not-a-session", "csrftoken": "x" * 32}
    answer = requests.post(served.url + "/tm_api/test_start/", data=MALFORMED, cookies=cookies,
                           headers={"Content-Type": "application/json", **token})
    assert (answer.status_code, answer.json()) == (400, PARSE_ERROR)
    report = {"machine_name": "lean", "timestamp": "2026-11-29 10:00:00",
              "master_scenario": {"file_path": "/", "file_name": "m.py", "script": "",
                                  "scenarios": []}}
    stored = requests.post(served.url + "/tm_api/dry_run/", json=report, cookies=cookies,
                           headers=token)
    assert stored.status_code == 201, stored.text
    for response in (answer, stored):
        assert {k: response.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS
        assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        assert "Set-Cookie" not in response.headers
        assert "Cookie" not in response.headers.get("Vary", "")
        assert response.headers["Content-Length"] == str(len(response.content))
    # SecurityMiddleware's HTTPS redirect still applies.
    plain = requests.post(served.url + "/tm_api/dry_run/", json=report, allow_redirects=False,
                          headers={"Authorization": f"Token {secret}"})
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://127.0.0.1:{served.port}/tm_api/dry_run/"


@pytest.mark.integration
def test_pages_keep_the_full_stack_csrf_and_session(served):
    with requests.Session() as browser:
        login = browser.get(served.url + "/login/", headers=HTTPS)
        assert login.status_code == 200 and "csrftoken" in login.cookies
        assert {k: login.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS
        refused = browser.post(served.url + "/login/", headers=HTTPS,
                               data={"username": "a", "password": "b"})
        assert refused.status_code == 403 and "The form could not be sent" in refused.text


@pytest.mark.integration
def test_websockets_take_traces_under_each_server(served):
    ws = websocket.create_connection(served.ws_url + "/ws/trace/31", timeout=10)
    ws.send(json.dumps([{"type": "TRACE_START", "timestamp": 0, "group_id": "t"},
                        {"type": "SPAN_START", "timestamp": 1, "group_id": "s", "name": "a"},
                        {"type": "SPAN_END", "timestamp": 2, "group_id": "s"},
                        {"type": "TRACE_END", "timestamp": 3, "group_id": "t"}]))
    assert json.loads(ws.recv()) == {"message": "Trace stored. Closing the connection"}
    ws.close()


@pytest.mark.unit
async def test_an_unknown_path_under_an_ingest_prefix_is_a_plain_404_without_cookies(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    for path, content_type in (("/tracking/a/b", b"application/json"),
                               ("/v1/nothing-here", b"text/html; charset=utf-8")):
        communicator = HttpCommunicator(application, "GET", path,
                                        headers=[(b"host", b"127.0.0.1")])
        response = await communicator.get_response()
        headers = dict(response["headers"])
        assert response["status"] == 404, path
        assert headers[b"Content-Type"] == content_type
        assert b"Set-Cookie" not in headers


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
async def test_a_sync_view_on_an_ingest_path_runs_on_a_thread_with_its_connection_handed_back(
        settings):
    """A view not made async for the lean path still works there, off the event loop, and its
    thread keeps no transaction open."""
    import threading

    from django.db import connection
    from django.http import JsonResponse
    from django.urls import path

    seen = {}

    def plain(request):
        from tm_api.models import Machine

        seen.update(thread=threading.current_thread().name, machines=Machine.objects.count(),
                    session=hasattr(request, "session"))
        return JsonResponse({"ok": True})

    class urls:
        urlpatterns = [path("v1/plain", plain)]

    settings.ROOT_URLCONF = urls
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    communicator = HttpCommunicator(IngestHandler(), "GET", "/v1/plain",
                                    headers=[(b"host", b"127.0.0.1")])
    response = await communicator.get_response()
    assert response["status"] == 200 and json.loads(response["body"]) == {"ok": True}
    assert seen["machines"] == 0 and seen["session"] is False
    assert seen["thread"] != threading.current_thread().name
    assert not connection.in_atomic_block


@pytest.mark.unit
async def test_a_trace_program_socket_opens_without_a_session_lookup():
    """A trace ingest socket (settings.INGEST_WEBSOCKET_PATHS) skips channels' session and user
    middleware: with a session cookie and no database access allowed it still opens (the
    pages' sockets would look the session up in the database)."""
    from channels.testing import WebsocketCommunicator

    socket = WebsocketCommunicator(application, "/ws/trace/5",
                                   headers=[(b"cookie", b"sessionid=not-a-real-session")])
    connected, _ = await socket.connect()
    assert connected
    await socket.disconnect()


@pytest.mark.unit
async def test_a_path_is_resolved_once_and_again_under_another_urlconf(settings):
    """The lean handler keeps each path's match (resolving a report's path tried every pattern
    listed before it): the second request of a path is not resolved again, and a changed
    ROOT_URLCONF is followed."""
    from django.http import HttpResponse
    from django.urls import path

    from plumbing.library_internals.django_asgi_handler import _resolved

    def view(answer):
        return lambda request: HttpResponse(answer, content_type="text/plain")

    class first:
        urlpatterns = [path("v1/which", view("first"))]

    class second:
        urlpatterns = [path("v1/which", view("second"))]

    settings.ALLOWED_HOSTS = ["127.0.0.1"]

    async def get(handler):
        communicator = HttpCommunicator(handler, "GET", "/v1/which",
                                        headers=[(b"host", b"127.0.0.1")])
        response = await communicator.get_response()
        return response["status"], response["body"]

    settings.ROOT_URLCONF = first
    handler = IngestHandler()
    misses = _resolved.cache_info().misses
    assert await get(handler) == (200, b"first")
    assert await get(handler) == (200, b"first")
    assert _resolved.cache_info().misses == misses + 1
    settings.ROOT_URLCONF = second
    assert await get(handler) == (200, b"second")
