"""Personal API tokens end to end: a real server process, a plain HTTP client (requests) as a
CI script would use, the real commands in processes of their own, and the page in Chromium."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from traces.tests.helpers import README_EXAMPLE
from traces.tests.helpers import store_trace as store

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


def manage(database_env, *args) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **database_env}
    env.pop("DATABASE_URL", None)  # the test database comes as DB_DEFAULT
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env)


def get(server, path, token=None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(server.url + path, headers=headers, timeout=10, **kwargs)


def test_a_script_reads_with_a_token_made_by_the_command(asgi_server, database_env,
                                                          django_user_model):
    from tracking.models import Project

    django_user_model.objects.create_user("ci-bot", password="pw-ci-bot-2026")
    store(41, README_EXAMPLE)
    made = manage(database_env, "create_api_token", "ci-bot", "--name", "quarantine job")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("pat_") and "quarantine job" in made.stderr

    assert get(asgi_server, "/api/traces/").status_code == 403  # no token: as before
    response = get(asgi_server, "/api/traces/", secret)
    assert response.status_code == 200 and response.json()["count"] == 1
    assert get(asgi_server, "/api/trace/41/", secret).json()["id"] == 41
    assert get(asgi_server, "/tm_api/machines/", secret).status_code == 200

    # Read-only: a write is refused, with the reason.
    refused = requests.delete(f"{asgi_server.url}/api/trace/41/", timeout=10,
                              headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"

    # The ingest routes keep their meaning of Bearer: a project token, on the lean path.
    project, project_secret = Project.create_with_token("Shop")
    ingest = requests.post(f"{asgi_server.url}/api/tracking/ingest/", timeout=10,
                           data=json.dumps({"events": []}),
                           headers={"Authorization": f"Bearer {project_secret}",
                                    "Content-Type": "application/json"})
    assert ingest.status_code == 200

    # Revoked by the command: 401 with a challenge at once, in the running server.
    revoked = manage(database_env, "revoke_api_token", secret[:12])
    assert revoked.returncode == 0 and "revoked" in revoked.stdout, revoked.stderr
    response = get(asgi_server, "/api/traces/", secret)
    assert response.status_code == 401 and "was revoked" in response.json()["detail"]
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="api"')


def test_a_read_write_token_deletes_through_the_api(asgi_server, database_env,
                                                    django_user_model):
    django_user_model.objects.create_user("cleaner", password="pw-cleaner-2026")
    store(42, README_EXAMPLE)
    made = manage(database_env, "create_api_token", "cleaner", "--name", "cleanup",
                  "--scope", "write", "--expires", "1")
    secret = made.stdout.strip()
    response = requests.delete(f"{asgi_server.url}/api/trace/42/", timeout=10,
                               headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 204
    assert get(asgi_server, "/api/trace/42/", secret).status_code == 404


def test_the_page_shows_a_new_token_once_and_revoking_stops_it(asgi_server, page, browser_login,
                                                               django_user_model, tmp_path):
    from accounts.models import ApiToken

    django_user_model.objects.create_user("ada", password="pw-ada-lovelace-1815")
    browser_login(page, asgi_server, "ada", "pw-ada-lovelace-1815")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"],
                                   origin=asgi_server.url)
    page.click("text=API tokens")
    page.wait_for_url(f"{asgi_server.url}/account/tokens/")
    assert page.locator("h1").inner_text() == "Personal API tokens"
    assert "No tokens yet" in page.locator("main").inner_text()

    page.fill("input[name=name]", "nightly flaky report")
    page.select_option("select[name=expires]", "30")
    page.click("button:has-text('Create token')")
    value = page.locator("#new-token-value")
    value.wait_for()
    secret = value.input_value()
    assert secret.startswith("pat_")
    page.click("button:has-text('Copy')")
    page.locator(".copy-state", has_text="Copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.screenshot(path=str(tmp_path / "tokens.png"), full_page=True)

    assert get(asgi_server, "/api/traces/", secret).status_code == 200
    row = page.locator("tr[data-token]")
    assert row.count() == 1 and "nightly flaky report" in row.inner_text()

    # Shown once: a reload is a plain GET of the list (no second token, no secret).
    page.reload()
    assert page.locator("#new-token-value").count() == 0
    assert secret not in page.content()
    assert ApiToken.objects.count() == 1
    assert page.locator("tr[data-token] td").nth(4).inner_text() != "never"  # last used

    # Revoke (confirming the dialog): the token stops working at once.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Revoke')")
    page.locator(".messages", has_text="stops working at once").wait_for()
    assert "revoked" in page.locator("tr[data-token]").inner_text()
    response = get(asgi_server, "/api/traces/", secret)
    assert response.status_code == 401 and "was revoked" in response.json()["detail"]


def test_a_program_follows_a_live_page_with_its_token(asgi_server, django_user_model):
    """The pages' websockets take a personal token as the REST API does (any scope: they only
    read); a refused token refuses the handshake (HTTP 403), never an anonymous socket."""
    import websocket

    from accounts.models import ApiToken

    ada = django_user_model.objects.create_user("ada", password="pw-ada-lovelace-1815")
    token, secret = ApiToken.issue(ada, "live follower")
    url = f"{asgi_server.ws_url}/ws/machine/status/"

    with pytest.raises(websocket.WebSocketBadStatusException) as anonymous:
        websocket.create_connection(url, timeout=5)
    assert anonymous.value.status_code == 403

    live = websocket.create_connection(url, timeout=5,
                                       header=[f"Authorization: Bearer {secret}"])
    assert live.connected
    live.ping()
    live.close()

    token.revoke()
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=5, header=[f"Authorization: Bearer {secret}"])
    assert refused.value.status_code == 403
