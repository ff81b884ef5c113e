from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import SHOWN_CHARS, ApiToken
from plumbing.tokens import token_digest

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada", password="pw-ada-1815")


def create(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_create_prints_the_token_once_and_stores_its_digest(ada):
    secret, said = create("ada", "--name", "CI quarantine", "--scope", "write", "--expires", "30")
    token = ApiToken.objects.get()
    assert secret.startswith("pat_") and len(secret) > 40
    assert token.digest == token_digest(secret) and token.prefix == secret[:SHOWN_CHARS]
    assert token.user == ada and token.name == "CI quarantine" and token.writes
    assert token.expires is not None
    assert secret not in said and token.prefix in said and "read-write" in said
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/traces/").status_code == 200


def test_create_defaults_to_read_without_expiry(ada):
    create("ada", "--name", "reader")
    token = ApiToken.objects.get()
    assert token.scope == ApiToken.READ and token.expires is None


@pytest.mark.parametrize("args, message", [
    (["nobody", "--name", "x"], "no user 'nobody'"),
    (["ada", "--name", "  "], "--name must have"),
    (["ada", "--name", "x", "--expires", "0"], "--expires takes"),
])
def test_create_refuses_bad_input(ada, args, message):
    with pytest.raises(CommandError, match=message):
        create(*args)
    assert not ApiToken.objects.exists()


def test_create_refuses_a_deactivated_user(ada):
    ada.is_active = False
    ada.save()
    with pytest.raises(CommandError, match="deactivated"):
        create("ada", "--name", "x")


def test_revoke_by_prefix_stops_the_token(ada):
    secret, _ = create("ada", "--name", "ci")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/traces/").status_code == 200
    out = StringIO()
    call_command("revoke_api_token", secret[:SHOWN_CHARS] + "…", stdout=out)
    assert "revoked" in out.getvalue() and secret not in out.getvalue()
    assert client.get("/api/traces/").status_code == 401
    out = StringIO()
    call_command("revoke_api_token", secret[:SHOWN_CHARS], stdout=out)
    assert "already revoked" in out.getvalue()


def test_revoke_by_the_whole_token_and_list(ada):
    secret, _ = create("ada", "--name", "ci")
    other, _ = create("ada", "--name", "other")
    call_command("revoke_api_token", secret, stdout=StringIO())
    out = StringIO()
    call_command("revoke_api_token", "--list", stdout=out)
    listing = out.getvalue()
    assert f"{secret[:SHOWN_CHARS]}\tada\tci\tread\trevoked" in listing
    assert f"{other[:SHOWN_CHARS]}\tada\tother\tread\tactive" in listing
    assert secret not in listing and other not in listing


def test_revoke_refuses_unknown_and_short_prefixes(ada):
    with pytest.raises(CommandError, match="no token"):
        call_command("revoke_api_token", "pat_ZZZZZZZZ")
    with pytest.raises(CommandError, match="characters"):
        call_command("revoke_api_token", "pat_")
    with pytest.raises(CommandError, match="prefix"):
        call_command("revoke_api_token")
