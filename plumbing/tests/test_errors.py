"""Every API error answers {detail, code, errors?}; pages answer errors in the site's layout."""

import json

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.django_db, pytest.mark.urls(
    "plumbing.tests.urls_for_errors"
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


# --- pages: the site's layout, with DEBUG off (as pytest-django runs every test) ----------------

def assert_error_page(response, status, heading):
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert '<header class="topbar">' in page and "css/site.css" in page  # base.html
    assert f"<h1>{heading}</h1>" in page
    assert 'href="/">Back to the home page</a>' in page
    return page


def test_pages_not_found_are_in_the_layout_and_escape_the_path(client, settings):
    assert settings.DEBUG is False
    page = assert_error_page(client.get("/no-such-page/<b>x</b>"), 404, "Page not found")
    assert "<code>/no-such-page/%3Cb%3Ex%3C/b%3E</code>" in page and "<b>x</b>" not in page


def test_permission_denied_page_is_in_the_layout_and_offers_to_log_in(client, django_user_model):
    page = assert_error_page(client.get("/test/forbidden-page/"), 403, "Permission denied")
    assert 'href="/login/">Log in</a>' in page
    client.force_login(django_user_model.objects.create_user("ann", password="pw-123456789"))
    page = assert_error_page(client.get("/test/forbidden-page/"), 403, "Permission denied")
    assert "Ask an administrator" in page and "<span>ann</span>" in page


def test_server_error_and_bad_request_pages_are_in_the_layout(client):
    client.raise_request_exception = False
    page = assert_error_page(client.get("/test/crash-page/"), 500,
                             "Something went wrong on our side")
    assert "boom" not in page
    assert_error_page(client.get("/test/suspicious-page/"), 400, "Bad request")


def test_a_500_page_that_cannot_render_still_answers(client, settings, tmp_path):
    (tmp_path / "500.html").write_text("{% url 'no-such-route' %}")  # a broken layout, say
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    client.raise_request_exception = False
    response = client.get("/test/crash-page/")
    assert response.status_code == 500
    assert "<h1>500 Server error</h1>" in response.content.decode()


def test_database_outage_page_is_in_the_layout_and_asks_to_come_back(rf):
    from django.db import OperationalError

    from plumbing.errors import database_unavailable_response

    response = database_unavailable_response(rf.get("/traces/"), OperationalError("gone"))
    assert_error_page(response, 503, "Service unavailable")
    assert response["Retry-After"] == "5"
    api = database_unavailable_response(rf.get("/api/traces/"), OperationalError("gone"))
    assert api.status_code == 503 and json.loads(api.content)["code"] == "database_unavailable"


def test_csrf_failure_page_is_in_the_layout_and_says_why(client):
    from django.test import Client

    page = assert_error_page(Client(enforce_csrf_checks=True).post("/login/", {}), 403,
                             "The form could not be sent")
    assert "Reason: CSRF cookie not set." in page


def test_real_server_with_debug_off_answers_pages_and_api_paths_apart(asgi_server):
    import requests

    page = requests.get(asgi_server.url + "/traces/no/such/page/", timeout=10)
    assert page.status_code == 404 and '<header class="topbar">' in page.text
    assert "<h1>Page not found</h1>" in page.text
    stylesheet = page.text.split('<link rel="stylesheet" href="')[1].split('"')[0]
    assert requests.get(asgi_server.url + stylesheet, timeout=10).status_code == 200
    for path in ("/api/no-such-thing/", "/tm_api/no-such-thing/", "/tracking/no/such/thing/"):
        response = requests.get(asgi_server.url + path, timeout=10)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Not found.", "code": "not_found"}, path
    refused = requests.post(asgi_server.url + "/login/", data={"username": "x"}, timeout=10)
    assert refused.status_code == 403 and "<h1>The form could not be sent</h1>" in refused.text
