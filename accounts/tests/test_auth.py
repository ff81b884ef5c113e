"""Personal API tokens on the REST API, through Django's test client and the real views."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken
from traces.tests.helpers import README_EXAMPLE
from traces.tests.helpers import store_trace as store
from tracking.models import Project

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def private(settings):
    settings.DASHBOARDS_PUBLIC = False


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada", password="pw-ada-1815")


def bearer(secret: str, **extra) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", **extra)


def test_a_read_token_reads_every_read_api_as_its_user(ada):
    token, secret = ApiToken.issue(ada, "ci")
    store(1, README_EXAMPLE)
    for path in ("/api/traces/", "/api/trace/1/", "/tm_api/machines/",
                 "/api/tracking/projects/"):
        assert Client().get(path).status_code == 403, path  # no credentials, as before
        response = bearer(secret).get(path)
        assert response.status_code == 200, (path, response.content[:200])
    token.refresh_from_db()
    assert token.last_used is not None


def test_a_read_token_may_not_write(ada):
    _, secret = ApiToken.issue(ada, "ci")
    store(2, README_EXAMPLE)
    response = bearer(secret).delete("/api/trace/2/")
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert "read-write" in response.json()["detail"]
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]
    assert bearer(secret).get("/api/trace/2/").status_code == 200  # still there


def test_a_read_write_token_writes_without_csrf_even_beside_a_session(ada, django_user_model):
    _, secret = ApiToken.issue(ada, "cleanup", ApiToken.WRITE)
    store(3, README_EXAMPLE)
    store(4, README_EXAMPLE)
    client = bearer(secret, enforce_csrf_checks=True)
    assert client.delete("/api/trace/3/").status_code == 204
    # A cookie riding along changes nothing: the token decides, and a token needs no CSRF token.
    client.force_login(django_user_model.objects.create_user("bob", password="pw-bob-1999"))
    assert client.delete("/api/trace/4/").status_code == 204
    # The session alone still needs it.
    session = Client(enforce_csrf_checks=True)
    session.force_login(ada)
    store(5, README_EXAMPLE)
    assert session.delete("/api/trace/5/").status_code == 403


@pytest.mark.parametrize("case", ["unknown", "revoked", "expired", "deactivated", "project",
                                  "machine", "empty-looking"])
def test_a_bad_token_is_401_with_a_challenge_never_anonymous(case, ada, settings):
    settings.DASHBOARDS_PUBLIC = True  # anonymous could read: a bad token still may not
    token, secret = ApiToken.issue(ada, "ci")
    expected = {"unknown": "Unknown personal API token", "revoked": "was revoked",
                "expired": "expired at", "deactivated": "is deactivated",
                "project": "This is a project token", "machine": "This is a machine token",
                "empty-looking": "Unknown personal API token"}[case]
    if case == "unknown":
        secret = secret[:-2] + ("AA" if not secret.endswith("AA") else "BB")
    elif case == "revoked":
        token.revoke()
    elif case == "expired":
        ApiToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(seconds=1))
    elif case == "deactivated":
        ada.is_active = False
        ada.save()
    elif case == "project":
        _, secret = Project.create_with_token("Shop")
    elif case == "machine":
        from tm_api.auth import issue_token

        _, secret = issue_token("rack")
    else:
        secret = "pat_"
    response = bearer(secret).get("/api/traces/")
    assert response.status_code == 401, response.content
    assert expected in response.json()["detail"]
    assert response.json()["code"] == "invalid_token"
    assert response["WWW-Authenticate"].startswith('Bearer realm="api", error="invalid_token"')
    assert secret not in response.content.decode()  # the answer never repeats a secret


def test_an_expiring_token_works_until_it_expires(ada):
    token, secret = ApiToken.issue(ada, "ci", expires_in_days=1)
    assert timedelta(hours=23) < token.expires - timezone.now() <= timedelta(days=1)
    assert bearer(secret).get("/api/traces/").status_code == 200


def test_last_used_is_written_at_most_once_a_minute(ada):
    token, secret = ApiToken.issue(ada, "ci")
    client = bearer(secret)
    client.get("/api/traces/")
    first = ApiToken.objects.get(pk=token.pk).last_used
    client.get("/api/traces/")
    assert ApiToken.objects.get(pk=token.pk).last_used == first
    ApiToken.objects.filter(pk=token.pk).update(last_used=first - timedelta(minutes=2))
    client.get("/api/traces/")
    assert ApiToken.objects.get(pk=token.pk).last_used > first


def test_a_staff_only_api_stays_staff_only(ada, django_user_model, settings):
    settings.ROOT_URLCONF = "accounts.tests.urls_staff_only"
    _, secret = ApiToken.issue(ada, "ci", ApiToken.WRITE)
    response = bearer(secret).get("/api/test/staff-only/")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    staff = django_user_model.objects.create_superuser("grace", password="pw-grace-1906")
    _, staff_secret = ApiToken.issue(staff, "ops")
    response = bearer(staff_secret).get("/api/test/staff-only/")
    assert response.status_code == 200 and response.json() == {"user": "grace"}


def test_tokens_open_no_page(ada):
    """Pages keep the session: a token is for the API."""
    _, secret = ApiToken.issue(ada, "ci")
    response = bearer(secret).get("/traces/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_bearer_keeps_meaning_a_project_token_on_ingest_routes(ada):
    _, secret = ApiToken.issue(ada, "ci", ApiToken.WRITE)
    project, project_secret = Project.create_with_token("Shop")
    batch = json.dumps({"events": []})
    assert bearer(project_secret).post("/api/tracking/ingest/", batch,
                                       content_type="application/json").status_code == 200
    # A personal token is no project token there.
    assert bearer(secret).post("/api/tracking/ingest/", batch,
                               content_type="application/json").status_code == 403
    assert bearer(project_secret).post("/v1/traces", json.dumps({"resourceSpans": []}),
                                       content_type="application/json").status_code == 200
    assert bearer(secret).post("/v1/traces", json.dumps({"resourceSpans": []}),
                               content_type="application/json").status_code == 403


def test_the_schema_declares_the_token():
    schema = Client().get("/api/schema/?format=json").json()
    scheme = schema["components"]["securitySchemes"]["personalToken"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    reads = schema["paths"]["/api/traces/"]["get"]["security"]
    assert {"personalToken": []} in reads
    # Ingest routes keep their own.
    ingest = schema["paths"]["/api/tracking/ingest/"]["post"]["security"]
    assert {"personalToken": []} not in ingest
