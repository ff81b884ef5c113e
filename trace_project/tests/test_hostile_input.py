"""Hostile input at every door: a clear 4xx (or a refused handshake), never a 500, nothing bad
stored. The values of each app's own checks are tested beside them (tm_api/tests/test_write_api,
tracking/tests/test_ingest, traces/tests/test_consumers); these are the doors themselves."""

import uuid

import pytest
from channels.testing import WebsocketCommunicator

from tm_api.auth import issue_token
from tm_api.models import Run
from trace_project.asgi import application
from tracking.models import Project, RequestMetric

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def hostile_client(client, settings):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = True
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize("path", ["/tm_api/dry_run/", "/tm_api/test_start/",
                                  "/tm_api/test_stop/", "/tracking/{project}",
                                  f"/tracking/{uuid.uuid4()}", "/api/tracking/ingest/"])
def test_deeply_nested_json_is_a_400_in_the_error_shape(hostile_client, path):
    project, token = Project.create_with_token("Shop")
    authorization = (f"Token {issue_token('rack', None)[1]}" if path.startswith("/tm_api/")
                     else f"Bearer {token}")
    response = hostile_client.post(path.format(project=project.public_id), DEEP,
                                   content_type="application/json",
                                   HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert set(body) >= {"detail", "code"} and "nested too deeply" in str(body)
    assert not Run.objects.exists() and not RequestMetric.objects.exists()


def test_a_deeply_nested_body_on_a_logged_in_delete_is_not_a_500(hostile_client,
                                                                   django_user_model):
    hostile_client.force_login(django_user_model.objects.create_user("ada", password="x"))
    response = hostile_client.delete("/api/trace/1/", DEEP, content_type="application/json")
    assert response.status_code in (400, 403, 404), response.content[:300]


@pytest.mark.parametrize("path", ["/api/trace/{n}/", "/traces/{n}/", "/machines/{n}/",
                                  "/machines/runs/{n}/", "/tm_api/test/{n}"])
@pytest.mark.parametrize("digits", [19, 5000])
def test_an_id_too_long_for_the_database_is_a_404(admin_client, path, digits):
    admin_client.raise_request_exception = False
    assert admin_client.get(path.format(n="9" * digits)).status_code == 404


@pytest.mark.parametrize("path", ["/ws/trace/" + "9" * 5000, "/ws/trace/" + "9" * 20,
                                  "/ws/trace/abc", "/ws/traces/" + "9" * 5000 + "/live/",
                                  "/ws/machine/" + "9" * 5000 + "/last/",
                                  "/ws/machine/" + "9" * 5000 + "/runs/", "/ws/nowhere/"])
async def test_a_websocket_path_no_route_takes_is_refused_at_the_handshake(path, caplog):
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect()
    assert connected is False
    assert "Exception inside application" not in caplog.text
    await communicator.wait()
