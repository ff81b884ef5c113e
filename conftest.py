"""Fixtures shared by every app's tests: real services, a real server, a real browser.

- `redis_url`: a Redis to test against (REDIS_URL, else TEST_REDIS_URL); skipped without one.
- `asgi_server`: this project served by a real daphne process (plumbing.devserver) on the
  test database, with websockets; it brings `transactional_db`, so the server sees the rows the
  test commits. `server_factory(**env)` starts one of its own with other settings.
- `browser` / `page`: Debian's headless Chromium driven by Playwright.
With CI_NO_SKIPS=1 (set by .ci/run) a skipped test fails the run: in CI every service is there.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations
from hypothesis import settings as hypothesis_settings

from plumbing.devserver import Server

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]

# Locally Hypothesis draws new examples each run (that is how it finds things); in CI (.ci/run
# sets CI_NO_SKIPS) the examples are fixed, so a run's colour depends on the code alone.
hypothesis_settings.register_profile("default", deadline=None)
hypothesis_settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
hypothesis_settings.load_profile(
    "ci" if os.environ.get("CI") or os.environ.get("CI_NO_SKIPS") else "default")


# --- CI: no test may be skipped for want of a service -------------------------------------------

def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = terminalreporter.stats.get("skipped", [])
    if os.environ.get("CI_NO_SKIPS") and skipped:
        terminalreporter.write_line(
            f"CI_NO_SKIPS: {len(skipped)} test(s) skipped; every service must be available in CI.",
            red=True,
        )


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI_NO_SKIPS") and reporter and reporter.stats.get("skipped"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- Emptying PostgreSQL between transactional tests -------------------------------------------

def _sql_flush_by_delete(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    """PostgreSQL's sql_flush for the tests: Django empties the database after every
    transactional test (each test with a real server) with one TRUNCATE of its tables, which
    gives every table and index a new file: 0.35-0.39 s a test here. A DELETE of each table
    takes 5-11 ms (a test leaves a few rows; the foreign keys are checked at the commit, so the
    order does not matter). Nothing else changes: TRUNCATE without RESTART IDENTITY keeps the
    sequences too, and a flush that resets them (reset_sequences) keeps Django's statement."""
    if reset_sequences or not tables:
        return _sql_flush_by_truncate(self, style, tables, reset_sequences=reset_sequences,
                                      allow_cascade=allow_cascade)
    return ["SET CONSTRAINTS ALL DEFERRED"] + [
        f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))}"
        for table in tables]


_sql_flush_by_truncate = PostgresOperations.sql_flush
PostgresOperations.sql_flush = _sql_flush_by_delete


# --- PostgreSQL-only tests ------------------------------------------------------------------------

def pytest_collection_modifyitems(config, items):
    """Tests marked `postgresql` test what exists only there (partitioned tables): on the
    embedded default (SQLite) they are deselected, not skipped, and the summary says how many;
    CI's PostgreSQL pass runs them (and a skip there fails the run, CI_NO_SKIPS)."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    selected = [item for item in items if item.get_closest_marker("postgresql") is None]
    if len(selected) < len(items):
        config.hook.pytest_deselected(
            items=[item for item in items if item.get_closest_marker("postgresql")])
        items[:] = selected


# --- services -----------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _no_token_found_in_an_earlier_test():
    """A test's rows are rolled back or truncated without signals: no token cache
    (plumbing.tokens.FoundByDigest) may keep a row of an earlier test (the demo's tokens are the
    same in every test)."""
    from plumbing.tokens import FoundByDigest

    FoundByDigest.forget_all()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, left so that it can be dropped at the end."""
    yield
    import time

    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all(initialized_only=True):
            if hasattr(connection, "close_pool"):
                connection.close_pool()
            connection.close()
        connection = connections["default"]
        if connection.vendor == "postgresql":
            # Connections left checked out in worker threads of async tests (and sessions of
            # servers stopped a moment ago) would make DROP DATABASE fail: end them.
            time.sleep(0.2)
            with connection._nodb_cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    [connection.settings_dict["NAME"]],
                )


@pytest.fixture(scope="session")
def redis_url():
    url = os.environ.get("REDIS_URL") or os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("needs Redis: set REDIS_URL or TEST_REDIS_URL")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        pytest.skip(f"Redis at {url} does not answer: {error}")
    return url


def test_database_env() -> str:
    """The test database as DB_DEFAULT JSON (a DATABASES entry), for processes started by a test."""
    from django.db import connections

    config = connections["default"].settings_dict
    keys = ["ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS", "CONN_MAX_AGE"]
    entry = {key: config[key] for key in keys if key in config}
    # The pool's settings are the server process's own to make.
    entry["OPTIONS"] = {k: v for k, v in entry.get("OPTIONS", {}).items() if k != "pool"}
    return json.dumps(entry, default=str)


test_database_env.__test__ = False


@pytest.fixture
def database_env(django_db_setup):
    """Environment for a process started by a test (a worker, a command) to use the test
    database; use with transactional_db so that it sees the test's rows."""
    return {"DB_DEFAULT": test_database_env()}


@pytest.fixture
def server_factory(django_db_setup, transactional_db):
    """server_factory(**env) -> a started Server of its own on the test database (stopped after
    the test); for tests that need other settings (REDIS_URL, ...) or that stop the server."""
    servers = []

    def start(**env_overrides):
        server = Server({"DB_DEFAULT": test_database_env(), **env_overrides}).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def _asgi_server_process(django_db_setup, django_db_blocker):
    server = Server({"DB_DEFAULT": test_database_env()}).start()
    yield server
    server.stop()


@pytest.fixture
def asgi_server(_asgi_server_process, transactional_db):
    """A real server on the test database; rows the test commits are visible to it."""
    return _asgi_server_process


@pytest.fixture
def project_token(transactional_db):
    """The token of a new request-metrics project named "shop", for exporters and trackers that
    send to a real server (rows committed, so the server sees them)."""
    from tracking.models import Project

    project = Project(name="shop")
    token = project.issue_token()
    project.save()
    return token


@pytest.fixture
def tracked_flask_app():
    """tracked_flask_app(server, name) -> (project, token, base url, tracker): a new project and
    a Flask app served on a real port, tracked by the request tracker's Flask extension into
    `server`, answering GET /orders/<n>; stopped after the test."""
    import threading

    from flask import Flask
    from werkzeug.serving import make_server

    from monitor_request_tracker.flask import Tracker
    from tracking.models import Project

    served = []

    def start(server, name):
        project, token = Project.create_with_token(name)
        app = Flask(name.lower().replace(" ", "_"))
        app.config["RIGID_ANALYTICS"] = {
            "PROJECT_ID": str(project.public_id), "PROJECT_TOKEN": token,
            "DEBUG_DISABLE_ANALYTICS": False, "BACKEND_ENDPOINT": server.url + "/",
            "FLUSH_INTERVAL": 0.1}
        app.add_url_rule("/orders/<int:number>", "order", lambda number: {"order": number})
        tracker = Tracker(app)
        http = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        served.append(http)
        return project, token, f"http://127.0.0.1:{http.server_port}", tracker

    yield start
    for http in served:
        http.shutdown()


# --- browser ------------------------------------------------------------------------------------

@pytest.fixture
def browser(monkeypatch):
    """Chromium for one test. Playwright's sync API runs an event loop in this thread while it
    is open; closing it after each test lets the async tests that follow run their own."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install -y chromium)")
    # The test's own ORM calls are plain synchronous code all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def browser_login():
    """browser_login(page, server, username, password): log in through the real login form."""

    def login(page, server, username, password):
        page.goto(f"{server.url}/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/")

    return login
