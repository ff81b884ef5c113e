"""Headless Chromium: a test's history (trend, pass rate), the flaky list, a comparison of two
runs, and a quarantine set from the flaky page and shown wherever the test appears."""

import pytest
import requests

pytestmark = pytest.mark.integration

REPORT = """<testsuite name="shop" timestamp="2026-01-01T10:0{n}:00">
  <testcase classname="shop.Cart" name="addsItem" time="{time}">{failure}</testcase>
  <testcase classname="shop.Cart" name="alwaysBroken" time="0.1"><failure message="nope"/></testcase>
  {extra}
</testsuite>"""


def import_runs(server, runs):
    ids = []
    for n, (failed, time, extra) in enumerate(runs):
        failure = '<failure message="expected 2 but was 3">trace</failure>' if failed else ""
        body = REPORT.format(n=n, time=time, failure=failure, extra=extra)
        response = requests.post(f"{server.url}/tm_api/junit/?machine=ci&branch=main&commit=abc1234",
                                 data=body, headers={"Content-Type": "application/xml"},
                                 timeout=30)
        assert response.status_code == 201, response.text
        ids.append(response.json()["run"])
    return ids


def test_history_flaky_compare_and_quarantine_pages(server_factory, page, browser_login,
                                                    django_user_model):
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True")
    django_user_model.objects.create_user("ada", password="pw-ada-1815")
    runs = import_runs(server, [
        (False, "1.0", ""), (True, "3.0", ""),
        (False, "2.0", '<testcase classname="shop.Cart" name="isNew" time="0.2"/>')])
    browser_login(page, server, "ada", "pw-ada-1815")

    # From the run page, a test's history link.
    page.goto(f"{server.url}/machines/runs/{runs[-1]}/")
    page.locator("tr", has_text="addsItem").locator("a.tm-history").click()
    page.wait_for_url("**/machines/tests/history/?name=shop.Cart%3A%3AaddsItem")
    assert page.locator("#identity").inner_text() == "shop.Cart::addsItem"
    assert page.locator("#pass-rate").inner_text() == "67 %"
    assert page.locator("#history tbody tr").count() == 3
    assert page.locator("#history tbody tr").nth(1).locator(".badge").inner_text() == "failed"
    assert "expected 2 but was 3" in page.locator("#history tbody tr").nth(1).inner_text()
    assert page.locator("#duration-trend circle").count() == 3
    assert page.locator("#duration-trend polyline").get_attribute("points")

    # The flaky list: passed and failed on one commit; the broken test is not listed.
    page.goto(f"{server.url}/machines/")
    page.click("#flaky-link")
    rows = page.locator("#flaky tbody tr")
    assert rows.count() == 1
    assert "addsItem" in rows.first.inner_text()
    assert "passed and failed on commit abc1234" in rows.first.inner_text()

    # Quarantine it from the flaky page (a form with the CSRF token).
    rows.first.locator("input[name=reason]").fill("ISSUE-7")
    rows.first.locator("button", has_text="Quarantine").click()
    assert "shop.Cart::addsItem is quarantined." in page.locator(".messages").inner_text()
    badge = page.locator("#flaky tbody tr").first.locator(".tm-quarantine")
    assert badge.inner_text() == "quarantined" and "ISSUE-7" in badge.get_attribute("title")
    assert page.locator("#quarantined tbody tr").count() == 1

    # The badge on the run page, on the history page and in the comparison.
    page.goto(f"{server.url}/machines/runs/{runs[1]}/")
    row = page.locator("tr", has_text="addsItem").first
    assert row.locator(".tm-quarantine").count() == 1
    assert page.locator("tr", has_text="alwaysBroken").first.locator(".tm-quarantine").count() == 0
    page.click("#compare-previous")
    page.wait_for_url(f"**/machines/compare/?head={runs[1]}")
    newly = page.locator("#newly_failing")
    assert "Newly failing 1" in newly.locator("h2").inner_text()
    assert newly.locator("tbody tr").first.locator(".tm-quarantine").count() == 1
    assert "Still failing 1" in page.locator("#still_failing h2").inner_text()
    assert "+2.00 s" in page.locator("#duration_changes").inner_text()

    page.goto(f"{server.url}/machines/compare/?head={runs[2]}")
    assert "isNew" in page.locator("#new").inner_text()
    assert "Fixed 1" in page.locator("#fixed h2").inner_text()
    # Another base, picked from the machine's runs.
    page.select_option("#pick-base select[name=base]", str(runs[0]))
    page.click("#pick-base button")
    page.wait_for_url(f"**/machines/compare/?head={runs[2]}&base={runs[0]}")
    assert "Fixed 0" in page.locator("#fixed h2").inner_text()
    assert "+1.00 s" in page.locator("#duration_changes").inner_text()

    page.goto(f"{server.url}/machines/tests/history/?name=addsItem")
    assert page.locator("h1 + .tm-quarantine").count() == 1
    assert "ISSUE-7" in page.locator("#quarantine-note").inner_text()
    page.locator("button", has_text="Lift quarantine").click()
    assert "out of quarantine" in page.locator(".messages").inner_text()
    assert page.locator(".tm-quarantine").count() == 0

    # The live last-run page links every test row to its history too.
    from tm_api.models import Run

    page.goto(f"{server.url}/machines/{Run.objects.get(pk=runs[-1]).machine_id}/last/")
    links = page.locator("tr.test a.tm-history")
    links.first.wait_for()
    assert links.count() == 3
    assert page.locator("tr.test .tm-quarantine").count() == 0  # lifted above
    page.goto(f"{server.url}/machines/tests/history/?name=shop.Cart::alwaysBroken")
    page.locator("input[name=reason]").fill("ISSUE-8")
    page.locator("button", has_text="Quarantine").click()
    page.goto(f"{server.url}/machines/{Run.objects.get(pk=runs[-1]).machine_id}/last/")
    page.locator("tr.test a.tm-history").first.wait_for()
    marked = page.locator("tr.test", has=page.locator(".tm-quarantine"))
    assert marked.count() == 1 and "alwaysBroken" in marked.inner_text()
    page.locator("tr.test", has_text="isNew").locator("a.tm-history").click()
    page.wait_for_url("**/machines/tests/history/?name=shop.Cart%3A%3AisNew")

    # A name nobody has: a clear message, not an error page.
    page.goto(f"{server.url}/machines/tests/history/?name=nope")
    assert "No test is called 'nope'" in page.locator("#history-error").inner_text()
