"""Fixtures shared by every app's tests: real services, a real server, a real browser.

- `redis_url`: a Redis to test against (REDIS_URL, else TEST_REDIS_URL); skipped without one.
- `asgi_server`: this project served by a real daphne process on the test database, with
  websockets; use it with the `transactional_db` fixture so the server sees committed rows.
- `browser` / `page`: Debian's headless Chromium driven by Playwright.
With CI_NO_SKIPS=1 (set by .ci/run) a skipped test fails the run: in CI every service is there.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

ROOT = Path(__file__).resolve().parent
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

hypothesis_settings.register_profile("default", deadline=None)
hypothesis_settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "default")


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


# --- services -----------------------------------------------------------------------------------

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_env() -> str:
    """The test database as seed 002's DB_DEFAULT JSON, for processes started by a test."""
    from django.db import connections

    config = connections["default"].settings_dict
    keys = ["ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS", "CONN_MAX_AGE"]
    return json.dumps({key: config[key] for key in keys if key in config}, default=str)


test_database_env.__test__ = False


class Server:
    """A daphne process serving this project on 127.0.0.1:<port> against the test database."""

    def __init__(self, env_overrides=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="daphne-", suffix=".log", delete=False)
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
        env.update(
            DB_DEFAULT=test_database_env(),
            ALLOWED_HOSTS="127.0.0.1,localhost",
            DEBUG="False",
            PYTHONUNBUFFERED="1",
        )
        env.update(env_overrides or {})
        self.env = env
        self.process = None

    def start(self, timeout=30):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
             "trace_project.asgi:application"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"daphne did not become healthy:\n{self.output()[-4000:]}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")


@pytest.fixture(scope="session")
def _asgi_server_process(django_db_setup, django_db_blocker):
    server = Server().start()
    yield server
    server.stop()


@pytest.fixture
def asgi_server(_asgi_server_process, transactional_db):
    """A real server on the test database; rows the test commits are visible to it."""
    return _asgi_server_process


# --- browser ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install -y chromium)")
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # plain synchronous code all the same.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
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
