"""/account/tokens/ through Django's test client (the browser test is test_server.py)."""

import re

import pytest
from django.test import Client

from accounts.models import ApiToken

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada", password="pw-ada-1815")


@pytest.fixture
def client(ada):
    client = Client(enforce_csrf_checks=False)
    client.force_login(ada)
    return client


def test_the_page_needs_a_login_even_with_public_dashboards(settings):
    settings.DASHBOARDS_PUBLIC = True
    response = Client().get("/account/tokens/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_creating_shows_the_secret_in_that_answer_only(client, ada):
    response = client.post("/account/tokens/", {"name": "CI job", "scope": "write",
                                                "expires": "30"})
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get()
    secret = re.search(r'id="new-token-value"[^>]*value="(pat_[^"]+)"', response.text).group(1)
    assert token.prefix == secret[:len(token.prefix)] and token.writes and token.user == ada
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/traces/").status_code == 200
    listing = client.get("/account/tokens/")
    assert secret not in listing.text and f"{token.prefix}…" in listing.text
    assert "read-write" in listing.text


def test_a_form_error_makes_no_token(client):
    response = client.post("/account/tokens/", {"name": "  ", "scope": "read", "expires": ""})
    assert response.status_code == 200 and "Give the token a name." in response.text
    response = client.post("/account/tokens/", {"name": "x", "scope": "admin", "expires": ""})
    assert response.status_code == 200 and "Select a valid choice" in response.text
    assert not ApiToken.objects.exists()


def test_the_list_shows_only_ones_own_tokens(client, ada, django_user_model):
    bob = django_user_model.objects.create_user("bob", password="pw-bob-1999")
    ApiToken.issue(ada, "ada's job")
    ApiToken.issue(bob, "bob's job")
    text = client.get("/account/tokens/").text
    assert "ada&#x27;s job" in text and "bob&#x27;s job" not in text


def test_revoking_needs_a_post_with_the_csrf_token_and_ones_own_token(ada, django_user_model):
    token, secret = ApiToken.issue(ada, "ci")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(ada)
    assert strict.post(f"/account/tokens/{token.pk}/revoke/").status_code == 403
    bob = Client()
    bob.force_login(django_user_model.objects.create_user("bob", password="pw-bob-1999"))
    assert bob.post(f"/account/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked is None
    page = strict.get("/account/tokens/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = strict.post(f"/account/tokens/{token.pk}/revoke/",
                           {"csrfmiddlewaretoken": csrf}, follow=True)
    assert response.status_code == 200 and "stops working at once" in response.text
    token.refresh_from_db()
    assert token.revoked is not None and token.state == "revoked"
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/traces/").status_code == 401


def test_names_are_shown_as_text(client, ada):
    ApiToken.issue(ada, '<img src=x onerror="window.__xss=1">')
    text = client.get("/account/tokens/").text
    assert "<img src=x" not in text and "&lt;img src=x" in text
