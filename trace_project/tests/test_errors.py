"""Every API error answers {detail, code, errors?}."""

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.django_db, pytest.mark.urls(
    "trace_project.tests.urls_for_errors"
)]


def test_invalid_input_names_the_field_and_lists_every_error(client):
    response = client.post(
        "/api/test/validate/", {"status": "maybe", "items": [{}, {"name": "ok"}]},
        content_type="application/json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["detail"].startswith("status: ")
    assert set(body["errors"]) == {"status", "items[0].name"}
    assert "maybe" in body["errors"]["status"][0]


def test_malformed_json_is_a_400_in_the_same_shape(client):
    response = client.post("/api/test/validate/", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert "JSON" in response.json()["detail"]


def test_not_found_keeps_detail(client):
    response = client.get("/api/test/missing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No trace 7.", "code": "not_found"}


def test_djangos_http404_gets_the_not_found_code(client):
    response = client.get("/api/test/django-404/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No machine 3.", "code": "not_found"}


def test_method_not_allowed(client):
    response = client.delete("/api/test/missing/")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_login_required_by_default(client):
    response = client.get("/api/test/protected/")
    assert response.status_code == 403
    assert response.json()["code"] == "not_authenticated"


def test_unknown_api_path_answers_json_but_pages_answer_html(client):
    response = client.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}
    page = client.get("/no-such-page/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")


def test_unexpected_exception_is_a_json_500(client):
    client.raise_request_exception = False
    response = client.get("/api/test/crash/")
    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
