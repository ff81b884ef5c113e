"""tm_api/auth.py: machine tokens found once are kept TM_TOKEN_CACHE_SECONDS per process; a token
deleted or saved in this process is forgotten at once, elsewhere within that time."""

import pytest
from django.db import connection

from tm_api import auth
from tm_api.auth import issue_token
from tm_api.models import MachineToken

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def machines(client, settings):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = False
    auth.found_tokens.found.clear()
    from tm_api.tests.conftest import Machines

    return Machines(client)


def test_a_token_revoked_in_this_process_is_refused_at_once(machines):
    token, secret = issue_token("rack")
    assert machines.dry_run(HTTP_AUTHORIZATION=f"Token {secret}").status_code == 201
    token.delete()
    assert machines.dry_run(HTTP_AUTHORIZATION=f"Token {secret}").status_code == 401


def test_a_token_deleted_elsewhere_is_refused_once_its_time_is_up(machines, monkeypatch):
    token, secret = issue_token("rack")
    clock = [1000.0]
    monkeypatch.setattr(auth.found_tokens, "clock", lambda: clock[0])
    assert machines.dry_run(HTTP_AUTHORIZATION=f"Token {secret}").status_code == 201
    with connection.cursor() as cursor:  # as another process would: no signal here
        cursor.execute(f"DELETE FROM {MachineToken._meta.db_table} WHERE id = %s", [token.pk])
    clock[0] += 9
    assert machines.dry_run(HTTP_AUTHORIZATION=f"Token {secret}").status_code == 201
    clock[0] += 2  # past TM_TOKEN_CACHE_SECONDS (10)
    assert machines.dry_run(HTTP_AUTHORIZATION=f"Token {secret}").status_code == 401


def test_with_the_cache_off_no_token_is_kept(machines, settings):
    settings.TM_TOKEN_CACHE_SECONDS = 0
    _, secret = issue_token("rack")
    assert machines.dry_run(HTTP_AUTHORIZATION=f"Token {secret}").status_code == 201
    assert auth.found_tokens.found == {}


def test_unknown_tokens_are_never_kept(machines):
    for n in range(3):
        assert machines.dry_run(HTTP_AUTHORIZATION=f"Token nope-{n}").status_code == 401
    assert auth.found_tokens.found == {}


@pytest.mark.parametrize("anonymous_allowed", [True, False])
def test_a_report_without_a_token_skips_drf_on_the_event_loop_only_where_anonymous_is_allowed(
        rf, settings, anonymous_allowed):
    # Where anonymous machines may write, a report without an Authorization header has nothing
    # DRF would refuse on the event loop, so the loop does not build DRF's view for it; where
    # they may not, DRF answers the 401 there (plumbing/tests/test_ingest_path.py).
    from tm_api.views import _nothing_to_refuse_on_the_loop

    settings.TM_ALLOW_ANONYMOUS_MACHINES = anonymous_allowed
    body = b'{"machine_name": "rack", "file_path": "/t", "file_name": "t.py"}'
    plain = rf.post("/tm_api/test_start/", body, content_type="application/json")
    assert _nothing_to_refuse_on_the_loop(plain) is anonymous_allowed
    with_token = rf.post("/tm_api/test_start/", body, content_type="application/json",
                         HTTP_AUTHORIZATION="Token tm_abc")
    assert _nothing_to_refuse_on_the_loop(with_token)
    malformed = rf.post("/tm_api/test_start/", body, content_type="application/json",
                        HTTP_AUTHORIZATION="Token")
    assert not _nothing_to_refuse_on_the_loop(malformed)
