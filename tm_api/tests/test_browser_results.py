"""Headless Chromium: a run page shows why a test failed (collapsed, escaped, monospace)."""

from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.integration

SUREFIRE = Path(__file__).parent / "fixtures" / "TEST-com.acme.shop.CartServiceTest.xml"
HOSTILE = b"""<testsuite name="web">
  <testcase classname="web.Login" name="rejectsBadPassword" time="0.2">
    <failure message="wrong user returned &lt;img src=x onerror=&quot;window.__owned=1&quot;&gt;"
      type="AssertionError">Traceback (most recent call last):
  File "web/login.py", line 12, in rejectsBadPassword
AssertionError: wrong user returned</failure>
    <system-out>stdout of the failing test</system-out>
  </testcase>
</testsuite>"""


def test_the_run_page_shows_a_failures_message_and_details_on_demand(server_factory, page):
    server = server_factory(DASHBOARDS_PUBLIC="True", TM_ALLOW_ANONYMOUS_MACHINES="True")
    runs = []
    for body in (SUREFIRE.read_bytes(), HOSTILE):
        response = requests.post(f"{server.url}/tm_api/junit/?machine=maven&branch=main"
                                 "&commit=4b825dc642cb6eb9&build_url=https://ci.example/b/9",
                                 data=body, headers={"Content-Type": "application/xml"},
                                 timeout=30)
        assert response.status_code == 201, response.text
        runs.append(response.json()["run"])
    surefire_run, run = runs

    page.goto(f"{server.url}/machines/runs/{run}/")
    failure = page.locator("details.tm-failure").first
    summary = failure.locator("summary")
    assert "wrong user returned <img src=x" in summary.inner_text()
    assert page.locator("details.tm-failure img").count() == 0
    assert page.evaluate("window.__owned") is None
    traceback = failure.locator("pre.tm-detail").nth(1)
    assert not traceback.is_visible()  # collapsed until asked for
    summary.click()
    assert traceback.is_visible() and "line 12, in rejectsBadPassword" in traceback.inner_text()
    assert "monospace" in traceback.evaluate("e => getComputedStyle(e).fontFamily")
    assert "stdout of the failing test" in failure.inner_text()
    assert page.locator(".tm-ci .tm-branch").inner_text() == "main"
    assert page.locator(".tm-ci a.tm-build").get_attribute("href") == "https://ci.example/b/9"

    # The Surefire run: a flaky test shows its attempts, a skip its outcome.
    page.goto(f"{server.url}/machines/runs/{surefire_run}/?sort=status")
    assert any("2 attempts: failed, passed" in text
               for text in page.locator("tr.tm-result").all_inner_texts())
    assert page.locator(".tm-outcome.outcome-skipped").count() == 1
    page.locator("details.tm-failure summary", has_text="expected: <0> but was: <1>").click()
    assert page.locator("pre.tm-detail", has_text="CartServiceTest.java:57").first.is_visible()
