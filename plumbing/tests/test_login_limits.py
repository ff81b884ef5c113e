"""Password guessing on /login/ and the admin's login is throttled per account and per address
(django-axes, configured in settings.py), with a page that says why and until when."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

LIMIT = 10


@pytest.fixture
def ada(django_user_model, settings):
    # A fast hasher: these tests check dozens of passwords, and the hashing is not under test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return django_user_model.objects.create_user("ada", password="right-password-1")


def log_in(client, username, password, address="203.0.113.1", path="/login/"):
    return client.post(path, {"username": username, "password": password},
                       REMOTE_ADDR=address)


def test_an_account_is_paused_after_the_limit_from_any_address(client, ada):
    for attempt in range(LIMIT - 1):
        response = log_in(client, "ada", "wrong", address=f"203.0.113.{attempt + 1}")
        assert response.status_code == 200 and b"Please enter a correct" in response.content
    response = log_in(client, "ada", "wrong", address="198.51.100.7")
    assert response.status_code == 429
    text = response.content.decode()
    assert "Too many login attempts" in text and "15 minutes" in text
    assert response["Retry-After"] == "900"
    assert '<nav aria-label="Main">' in text  # the site's layout, not a bare page
    # Even the right password waits out the pause, from a fresh address too.
    assert log_in(client, "ada", "right-password-1", address="192.0.2.99").status_code == 429


def test_an_address_is_paused_after_the_limit_across_accounts(client, ada):
    for number in range(LIMIT):
        log_in(client, f"guess{number}", "wrong", address="203.0.113.50")
    response = log_in(client, "ada", "right-password-1", address="203.0.113.50")
    assert response.status_code == 429
    # Another address is not paused; ada's account has no failures of its own.
    response = log_in(client, "ada", "right-password-1", address="203.0.113.51")
    assert response.status_code == 302


def test_the_admin_login_is_throttled_too(client, ada):
    for _ in range(LIMIT):
        log_in(client, "ada", "wrong", path="/admin/login/")
    assert log_in(client, "ada", "wrong", path="/admin/login/").status_code == 429


def test_the_pause_ends_and_a_success_clears_the_count(client, ada):
    for _ in range(LIMIT):
        log_in(client, "ada", "wrong")
    assert log_in(client, "ada", "right-password-1").status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.first().attempt_time
                                 - timedelta(minutes=16))
    assert log_in(client, "ada", "right-password-1").status_code == 302
    assert not AccessAttempt.objects.exists()
