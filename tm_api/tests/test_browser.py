"""Headless Chromium: the last-run page follows a reporter without a reload."""

import json

import pytest

from tm_api.models import Machine
from tm_reporter import Reporter
from tm_reporter.client import tree

pytestmark = pytest.mark.integration


@pytest.fixture
def page(monkeypatch):
    """Chromium for this test only. The root `page` fixture keeps Playwright's event loop running
    for the whole session, which breaks every async test that runs after it (pytest-asyncio:
    "cannot be called from a running event loop"); this one stops it when the test ends."""
    import shutil
    from pathlib import Path

    import conftest as root

    if not shutil.which(root.CHROMIUM) and not Path(root.CHROMIUM).exists():
        pytest.skip(f"needs Chromium at {root.CHROMIUM}")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=root.CHROMIUM,
                                             args=root.CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        tab = context.new_page()
        tab.set_default_timeout(10_000)
        yield tab
        browser.close()


def test_last_run_page_updates_live_while_a_reporter_runs(server_factory, page):
    server = server_factory(DASHBOARDS_PUBLIC="True", TM_ALLOW_ANONYMOUS_MACHINES="True")
    reporter = Reporter(server.url, "bench rack", timeout=5)
    tests = [tree("/suite/lamp", f"0{n}_test_lamp.py", f"print({n})\n") for n in range(1, 4)]
    reporter.dry_run(tree("/suite", "scenario_master.py", "", [
        tree("/suite", "scenario_lamp.py", "", tests, "tests")], "scenarios"))
    machine = Machine.objects.get()

    page.goto(f"{server.url}/machines/{machine.pk}/last/")
    page.wait_for_selector(".live-indicator.connected")
    page.wait_for_selector("#done:text('0 / 3')")
    page.evaluate("window.__same_page = true")

    reporter.start("/suite/lamp", "01_test_lamp.py")
    page.wait_for_selector(".tm-stat .badge.status-running")
    reporter.stop("/suite/lamp", "01_test_lamp.py", "passed")
    reporter.start("/suite/lamp", "02_test_lamp.py")
    reporter.stop("/suite/lamp", "02_test_lamp.py", "failed")
    page.wait_for_selector("#done:text('2 / 3')")
    rows = page.locator("tr.test .badge").all_inner_texts()
    assert rows == ["passed", "failed", "waiting"]
    # A row whose status changed flashes; the one still waiting does not.
    assert page.locator("tr.test.flash .badge").all_inner_texts() == ["passed", "failed"]
    assert page.locator("[data-count='failed']").inner_text() == "failed 1"
    assert page.evaluate("window.__same_page") is True  # updated in place, not reloaded

    # The script modal shows the highlighted source.
    page.locator("tr.test button.tm-script").first.click()
    page.wait_for_selector("dialog.tm-modal[open] .highlight")
    assert "print" in page.locator("dialog.tm-modal .body").inner_text()
    page.click("[data-close-modal]")

    # The machine list shows the machine with its status bar.
    page.goto(f"{server.url}/machines/")
    # waiting outranks failed
    assert page.locator(f"tr[data-machine-id='{machine.pk}'] .badge").inner_text() == "waiting"
    page.wait_for_selector(".live-indicator.connected")
    reporter.start("/suite/lamp", "03_test_lamp.py")
    page.wait_for_selector(f"tr[data-machine-id='{machine.pk}'] .badge.status-running")
    page.set_viewport_size({"width": 390, "height": 800})
    page.screenshot(path="/tmp/tm-machines-phone.png")


def test_machine_list_sorts_by_a_clicked_header_and_live_updates_never_move_rows(
        server_factory, page):
    server = server_factory(DASHBOARDS_PUBLIC="True", TM_ALLOW_ANONYMOUS_MACHINES="True")
    reporters = {name: Reporter(server.url, name, timeout=5) for name in ("bravo", "alpha")}
    for reporter in reporters.values():
        reporter.dry_run(tree("/suite", "scenario_master.py", "", [
            tree("/suite", "scenario_lamp.py", "", [tree("/suite/lamp", "01_test_lamp.py", "")],
                 "tests")], "scenarios"))
    page.goto(f"{server.url}/machines/")
    names = lambda: page.locator("#machines tbody td:first-child").all_inner_texts()
    assert names() == ["alpha", "bravo"]
    page.click("#machines th a:has-text('Machine')")
    page.wait_for_url("**sort=-machine**")
    assert names() == ["bravo", "alpha"]
    page.click("#machines th a:has-text('Status')")
    page.wait_for_url("**sort=status**")
    assert page.locator("#machines th[aria-sort=ascending]").inner_text().startswith("Status")
    assert names() == ["bravo", "alpha"]  # both waiting: the first to report first
    page.wait_for_selector(".live-indicator.connected")
    assert page.locator("#resort").is_hidden()

    reporters["alpha"].start("/suite/lamp", "01_test_lamp.py")  # waiting -> running
    page.wait_for_selector("tr[data-status=running]")
    assert names() == ["bravo", "alpha"]  # where it was, though "running" sorts first
    assert page.locator("#resort").is_visible()
    page.click("#resort a")
    page.wait_for_selector(".live-indicator.connected")
    assert names() == ["alpha", "bravo"]


def test_pages_apply_deltas_and_show_the_current_state_after_their_socket_reconnects(
        server_factory, page):
    """The last-run page applies small frames in place; when the server goes away and comes
    back, the last-run page and the machine list reconnect and show what changed meanwhile."""
    from conftest import test_database_env
    from plumbing.devserver import Server
    from tm_api import services

    env = {"DASHBOARDS_PUBLIC": "True", "TM_ALLOW_ANONYMOUS_MACHINES": "True"}
    server = server_factory(**env)
    reporter = Reporter(server.url, "rack", timeout=5)
    tests = [tree("/suite", f"0{n}_test.py", "") for n in range(1, 5)]
    reporter.dry_run(tree("/suite", "master.py", "", [
        tree("/suite", "scenario_a.py", "", tests[:2], "tests"),
        tree("/suite", "scenario_b.py", "", tests[2:], "tests")], "scenarios"))
    machine = Machine.objects.get()
    frames = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
    page.goto(f"{server.url}/machines/{machine.pk}/last/")
    page.wait_for_selector(".live-indicator.connected")
    page.evaluate("window.__same_page = true")

    reporter.start("/suite", "03_test.py")
    page.wait_for_selector("tr[data-scenario-id] .badge.status-running")
    reporter.stop("/suite", "03_test.py", "failed")
    page.wait_for_selector("#done:text('1 / 4')")
    statuses = lambda: page.locator("tr.test .badge").all_inner_texts()
    assert statuses() == ["waiting", "waiting", "failed", "waiting"]
    deltas = [json.loads(f)["machine_data"] for f in frames if '"delta":true' in f]
    assert deltas and all(len(d["last_master_scenario"]["scenarios"]) == 1 for d in deltas)
    assert all(len(s["tests"]) == 1 for d in deltas for s in d["last_master_scenario"]["scenarios"])
    assert page.evaluate("window.__same_page") is True

    # The server goes away; the machine's run moves on meanwhile; a server comes back.
    server.stop()
    page.wait_for_selector(".live-indicator.reconnecting")
    services.start_test("rack", "/suite", "01_test.py")
    services.stop_test("rack", "/suite", "01_test.py", "passed")
    services.start_test("rack", "/suite", "02_test.py")
    back = Server({"DB_DEFAULT": test_database_env(), **env}, port=server.port).start()
    try:
        page.wait_for_selector(".live-indicator.connected", timeout=15_000)
        page.wait_for_selector("#done:text('2 / 4')")
        assert statuses() == ["passed", "running", "failed", "waiting"]
        assert page.evaluate("window.__same_page") is True

        # The machine list, opened, then behind while its socket is down.
        page.goto(f"{back.url}/machines/")
        page.wait_for_selector(".live-indicator.connected")
        row = f"tr[data-machine-id='{machine.pk}']"
        assert page.locator(f"{row} .done").inner_text() == "2/4"
        back.stop()
        page.wait_for_selector(".live-indicator.reconnecting")
        services.stop_test("rack", "/suite", "02_test.py", "passed")
        services.start_test("rack", "/suite", "04_test.py")
        services.stop_test("rack", "/suite", "04_test.py", "passed")
        back = Server({"DB_DEFAULT": test_database_env(), **env}, port=server.port).start()
        page.wait_for_selector(".live-indicator.connected", timeout=15_000)
        page.wait_for_selector(f"{row} .done:text('4/4')")
        assert page.locator(f"{row} .badge").inner_text() == "failed"
    finally:
        back.stop()


def test_a_row_redrawn_while_its_link_is_pressed_waits_for_the_release_and_the_click_goes_through(
        server_factory, page):
    """A live frame that would redraw the row under a pressed pointer (window.redraw,
    static/js/live.js) waits for the release: released elsewhere, the row then shows the
    change; released on the link, the click opens the run. The right button holds nothing."""
    server = server_factory(DASHBOARDS_PUBLIC="True", TM_ALLOW_ANONYMOUS_MACHINES="True")
    reporter = Reporter(server.url, "rack", timeout=5)
    tests = [tree("/suite", f"0{n}_test.py", "pass\n") for n in range(1, 5)]
    reporter.dry_run(tree("/suite", "master.py", "", [
        tree("/suite", "scenario.py", "", tests, "tests")], "scenarios"))
    machine = Machine.objects.get()
    reporter.start("/suite", "04_test.py")

    with page.expect_websocket(lambda ws: "/runs/" in ws.url) as opened:
        page.goto(f"{server.url}/machines/{machine.pk}/")
    socket = opened.value
    page.wait_for_selector(".live-indicator.connected")
    run_id = page.locator("tr[data-run-id]").first.get_attribute("data-run-id")
    row = page.locator(f"tr[data-run-id='{run_id}']")
    link = row.locator("a").first

    def press(button="left"):
        box = link.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down(button=button)

    def change(n, status):
        """Reports test n's stop (the run's first of its status) while the pointer is held;
        returns once the page has the frame that shows it."""
        def shows(payload):
            run = json.loads(payload).get("run_data") or {}
            return (run.get("tests_statistics") or {}).get(status) == 1
        with socket.expect_event("framereceived", predicate=shows):
            reporter.stop("/suite", f"0{n}_test.py", status)
        page.wait_for_timeout(100)  # and handed to the page's code

    # The right button holds nothing (its menu may take the release): redrawn at once.
    press("right")
    change(4, "warning")
    assert row.locator(".status-warning").count() == 1
    page.mouse.up(button="right")

    def start(n):
        """Reports test n's start and waits until the row shows it running (a redraw of the row
        after this would race the press)."""
        reporter.start("/suite", f"0{n}_test.py")
        page.wait_for_selector(f"tr[data-run-id='{run_id}'] .tm-bar .status-running")

    # Released away from the link: no click; the row shows the change after the release.
    start(1)
    press()
    change(1, "passed")
    assert row.locator(".status-passed").count() == 0  # not redrawn under the pointer
    page.mouse.move(5, 5)
    page.mouse.up()
    page.wait_for_selector(f"tr[data-run-id='{run_id}'] .tm-bar .status-passed")
    assert page.url.rstrip("/").endswith(f"/machines/{machine.pk}")

    # Released on the link: the click it makes goes through.
    start(2)
    press()
    change(2, "failed")
    assert row.locator(".status-failed").count() == 0
    page.mouse.up()
    page.wait_for_url(f"**/machines/runs/{run_id}/")
