"""Headless Chromium: a real pytest session reporting through the plugin; the run page, the
machine page and the last-run page show its progress and time left, updated live."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tm_api import services

pytestmark = pytest.mark.integration

NAMES = ["test_one", "test_two", "test_three", "test_four"]
# Each test waits for its gate file, so that this test says when each one ends.
SUITE = "import os, time\n\n" + "".join(f'''
def {name}():
    gate = os.path.join(os.environ["GATES"], "{n}")
    deadline = time.monotonic() + 60
    while not os.path.exists(gate):
        assert time.monotonic() < deadline, "never opened"
        time.sleep(0.02)
''' for n, name in enumerate(NAMES))


def history(machine, minutes_each):
    """A finished run of the suite in which each test took `minutes_each` minutes."""
    t0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    services.record_dry_run(machine, t0, {
        "file_path": "", "file_name": "session", "scenarios": [{
            "file_path": "test_gated.py", "file_name": "test_gated.py",
            "tests": [{"file_path": "test_gated.py", "file_name": name} for name in NAMES]}]})
    for n, name in enumerate(NAMES):
        services.start_test(machine, "test_gated.py", name, t0 + timedelta(minutes=n * minutes_each))
        services.stop_test(machine, "test_gated.py", name, "passed",
                           t0 + timedelta(minutes=(n + 1) * minutes_each))


def test_a_pytest_session_shows_its_percentage_and_time_left_live(server_factory, page,
                                                                  tmp_path):
    server = server_factory(DASHBOARDS_PUBLIC="True", TM_ALLOW_ANONYMOUS_MACHINES="True")
    history("rack", minutes_each=2)
    gates = tmp_path / "gates"
    gates.mkdir()
    (tmp_path / "test_gated.py").write_text(SUITE)
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:cacheprovider", "-q",
         "test_gated.py", "--tm-url", server.url, "--tm-machine", "rack"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "GATES": str(gates), "TM_SPOOL_DIR": str(tmp_path / "spool")})
    try:
        machine, run = wait_for_the_sessions_run(server)

        # The run page: the dry run planned four tests of 2 minutes each.
        page.goto(f"{server.url}/machines/runs/{run}/")
        page.wait_for_selector(".live-indicator.connected")
        progress = page.locator("#run-progress")
        assert progress.locator(".tm-progress-count").inner_text() == "0 of 4 (0%)"
        assert progress.locator(".tm-eta").inner_text() == "about 8 min left"
        page.evaluate("window.__same_page = true")

        (gates / "0").touch()  # test_one passes, test_two runs: 3 tests of 2 minutes left
        page.wait_for_selector("#run-progress .tm-progress-count:text-is('1 of 4 (25%)')")
        assert progress.locator(".tm-eta").inner_text() == "about 6 min left"
        bar = progress.locator(".tm-progress-bar")
        assert bar.get_attribute("aria-valuenow") == "25"
        assert bar.locator("span").evaluate("e => e.style.width") == "25%"
        # The run's roll-ups beside it follow the same frames.
        assert page.locator(".tm-stat .value").first.inner_text() == "1 / 4"
        assert page.locator(".tm-head .badge").inner_text() == "running"
        assert page.evaluate("window.__same_page") is True  # updated in place
        page.screenshot(path="/tmp/tm-run-progress.png")

        # The machine page's row of the run.
        page.goto(f"{server.url}/machines/{machine}/")
        page.wait_for_selector(".live-indicator.connected")
        row = page.locator(f"tr[data-run-id='{run}'] .tm-progress")
        assert row.locator(".tm-progress-count").inner_text() == "1 of 4 (25%)"
        (gates / "1").touch()
        page.wait_for_selector(f"tr[data-run-id='{run}'] .tm-progress-count:text-is('2 of 4 (50%)')")
        assert row.locator(".tm-eta").inner_text() == "about 4 min left"
        page.screenshot(path="/tmp/tm-machine-progress.png")

        # The last-run page, to the end: a finished run says how long it took.
        page.goto(f"{server.url}/machines/{machine}/last/")
        page.wait_for_selector(".live-indicator.connected")
        assert page.locator("#run-progress .tm-progress-count").inner_text() == "2 of 4 (50%)"
        assert page.locator("#run-progress .tm-eta").inner_text() == "about 4 min left"
        (gates / "2").touch()
        page.wait_for_selector("#run-progress .tm-progress-count:text-is('3 of 4 (75%)')")
        assert page.locator("#run-progress .tm-eta").inner_text() == "about 2 min left"
        (gates / "3").touch()
        page.wait_for_selector("#run-progress .tm-progress-count:text-is('4 of 4 (100%)')")
        assert page.locator("#run-progress .tm-eta").inner_text().startswith("took ")
        assert session.wait(timeout=60) == 0, session.stdout.read()
    finally:
        for n in range(len(NAMES)):
            (gates / str(n)).touch()
        session.wait(timeout=60)


def wait_for_the_sessions_run(server):
    """(machine pk, run pk) of the session's run, once its dry run arrived."""
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        machines = requests.get(f"{server.url}/tm_api/machines/", timeout=5).json()["results"]
        if machines:
            runs = requests.get(f"{server.url}/tm_api/machine_dry_run_datas/{machines[0]['id']}",
                                timeout=5).json()["results"]
            if len(runs) == 2:
                return machines[0]["id"], runs[0]["id"]
        time.sleep(0.1)
    raise AssertionError("the session's dry run never arrived")
