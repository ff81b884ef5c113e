"""The one way a moment is shown: plumbing/times.py and its tags on the server,
static/js/times.js in the browser, and every page that shows a time."""

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template

from plumbing.times import exact, relative

MOMENT = datetime(2026, 11, 29, 6, 55, 11, 961996, tzinfo=UTC)


# --- the format, on the server --------------------------------------------------------------------

def test_exact_is_an_iso_like_date_24_hour_time_and_the_site_zone(settings):
    assert exact(MOMENT) == "2026-11-29 06:55:11 UTC"
    assert exact(MOMENT, "ms") == "2026-11-29 06:55:11.961 UTC"  # cut, not rounded, as in JS
    settings.TIME_ZONE = "Europe/Warsaw"
    assert exact(MOMENT) == "2026-11-29 07:55:11 Europe/Warsaw"
    assert exact(datetime(2026, 7, 1, 12, 0, tzinfo=UTC)) == "2026-07-01 14:00:00 Europe/Warsaw"


def test_exact_reads_iso_strings_and_naive_moments_in_the_site_zone(settings):
    settings.TIME_ZONE = "Asia/Kolkata"
    assert exact("2026-11-29T06:55:11.961996Z") == "2026-11-29 12:25:11 Asia/Kolkata"
    assert exact("2026-11-29T08:55:11+02:00") == "2026-11-29 12:25:11 Asia/Kolkata"
    naive = datetime(2026, 11, 29, 12, 25, 11)  # noqa: DTZ001 (naive on purpose)
    assert exact(naive) == "2026-11-29 12:25:11 Asia/Kolkata"


def test_exact_of_nothing_is_a_dash_and_of_a_non_moment_is_left_as_it_is():
    assert exact(None) == exact("") == "—"
    assert exact("yesterday") == "yesterday"


@pytest.mark.parametrize("ago, text", [
    (timedelta(0), "just now"), (timedelta(seconds=9.9), "just now"),
    (timedelta(seconds=10), "10 s ago"), (timedelta(seconds=59.9), "59 s ago"),
    (timedelta(minutes=1), "1 min ago"), (timedelta(minutes=59, seconds=59), "59 min ago"),
    (timedelta(hours=5, minutes=30), "5 h ago"), (timedelta(days=12, hours=23), "12 d ago"),
    (timedelta(days=29, hours=23), "29 d ago"), (timedelta(days=30), "2026-10-30 06:55:11 UTC"),
    (-timedelta(seconds=5), "just now"), (-timedelta(minutes=3), "in 3 min"),
])
def test_relative_says_how_long_ago_and_gives_a_date_past_30_days(ago, text):
    assert relative(MOMENT - ago, now=MOMENT) == text


def render(source, **context):
    return Template("{% load times %}" + source).render(Context(context))


def test_time_ago_is_a_time_element_with_the_exact_time_on_hover():
    html = render("{% time_ago moment %}", moment=timezone_now_minus(minutes=3))
    match = re.fullmatch(r'<time datetime="([^"]+)" title="([^"]+)" data-relative>3 min ago</time>', html)
    assert match, html
    moment = datetime.fromisoformat(match[1])
    assert moment.utcoffset() == timedelta(0) and match[2] == exact(moment)


def test_time_exact_shows_and_titles_the_exact_time_and_says_nothing_for_no_moment():
    assert render("{% time_exact moment %}", moment=MOMENT) == (
        '<time datetime="2026-11-29T06:55:11.961996+00:00" title="2026-11-29 06:55:11 UTC">'
        "2026-11-29 06:55:11 UTC</time>")
    assert ">2026-11-29 06:55:11.961 UTC</time>" in render(
        '{% time_exact moment precision="ms" %}', moment=MOMENT)
    assert render("{% time_exact moment %}", moment=None) == "—"
    assert render('{% time_exact moment empty="" %}', moment=None) == ""
    assert render("{% time_ago moment %}", moment="<b>") == "&lt;b&gt;"
    assert render("{{ moment|exact_time }}", moment=MOMENT) == "2026-11-29 06:55:11 UTC"


def timezone_now_minus(**delta):
    return datetime.now(UTC) - timedelta(**delta)


@pytest.mark.integration
@pytest.mark.django_db
def test_every_page_tells_its_script_the_site_zone(client, settings):
    settings.TIME_ZONE = "America/St_Johns"
    assert '<html lang="en" data-time-zone="America/St_Johns">' in client.get("/").content.decode()


# --- the same text from the server and the browser ----------------------------------------------

# A zone with half-hour offsets and summer time (changes on 2026-03-08 05:30 and 2026-11-01 04:30
# UTC), in a browser that lives elsewhere: the page must show the site's zone, not the browser's.
SITE_ZONE = "America/St_Johns"
BROWSER_ZONE = "Asia/Tokyo"
UNIX_STARTS = [
    1569972082.123,                                              # the example trace, ms
    datetime(2026, 3, 8, 5, 29, 59, tzinfo=UTC).timestamp(),     # just before summer time
    datetime(2026, 3, 8, 5, 30, 0, tzinfo=UTC).timestamp(),      # its first second
    datetime(2026, 11, 1, 4, 29, 59, tzinfo=UTC).timestamp(),
    datetime(2026, 11, 1, 4, 30, 0, tzinfo=UTC).timestamp(),     # back: 01:00 again
    1700000000.9996,                                             # rounds to .999600, shows .999
    2147483648,                                                  # past 2038
]


def _store_traces(starts):
    from django.db import connection

    from traces.tests.helpers import span, store_trace, trace_end, trace_start

    for trace_id, start in enumerate(starts, 1):
        store_trace(trace_id, [trace_start(start), trace_end(start + 2),
                               *span("s", f"span {trace_id}", start + 0.5, start + 1)])
    connection.close()


def _in_thread(function, *args):
    """Rows written from a thread of its own: this one runs Playwright's event loop, where the
    services' after-commit live frames cannot be sent."""
    thread = threading.Thread(target=function, args=args)
    thread.start()
    thread.join()


@pytest.mark.integration
def test_the_browser_formats_a_moment_exactly_as_the_server_does(server_factory, browser, settings):
    server = server_factory(DASHBOARDS_PUBLIC="True", TIME_ZONE=SITE_ZONE)
    _in_thread(_store_traces, UNIX_STARTS)
    settings.TIME_ZONE = SITE_ZONE
    page = browser.new_context(timezone_id=BROWSER_ZONE).new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{server.url}/traces/")

    assert page.evaluate("Times.zone") == SITE_ZONE
    shown = page.eval_on_selector_all("table time", """els => els.map((el) => ({
        text: el.textContent, title: el.title, iso: el.getAttribute("datetime"),
        relative: el.hasAttribute("data-relative"),
        js: Times.exact(el.getAttribute("datetime")),
        jsText: el.hasAttribute("data-relative") ? Times.relative(el.getAttribute("datetime"))
                                                 : Times.exact(el.getAttribute("datetime"))}))""")
    started = sorted(t["text"] for t in shown if not t["relative"])
    assert started == sorted(exact(datetime.fromtimestamp(s, UTC)) for s in UNIX_STARTS)
    assert "2026-03-08 01:59:59 America/St_Johns" in started  # -03:30, then summer time
    assert "2026-03-08 03:00:00 America/St_Johns" in started
    assert "2026-11-01 01:59:59 America/St_Johns" in started  # -02:30, then back to -03:30
    assert "2026-11-01 01:00:00 America/St_Johns" in started
    for time in shown:
        assert time["title"] == time["js"] == exact(time["iso"])
        if not time["relative"]:
            assert time["text"] == time["jsText"], time  # what a live row would get
    received = [t["text"] for t in shown if t["relative"]]
    assert len(received) == len(UNIX_STARTS) and all(RELATIVE.fullmatch(t) for t in received)

    # Relative times, from the same instants, agree too.
    now = MOMENT
    ages = [0, 9.5, 10, 61, 3599, 3600, 86399, 86400 * 29, 86400 * 30, -200]
    moments = [(now - timedelta(seconds=age)).isoformat() for age in ages]
    js = page.evaluate("([moments, now]) => moments.map((m) => Times.relative(m, now))",
                       [moments, now.isoformat()])
    assert js == [relative(m, now=now) for m in moments]


@pytest.mark.integration
def test_relative_times_stay_fresh_while_the_page_is_open(server_factory, page):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    _in_thread(_store_traces, [1569972082])
    page.clock.install()  # the page's own clock, moved on below without waiting
    page.goto(f"{server.url}/traces/")
    received = page.locator("time[data-relative]")
    assert RELATIVE.fullmatch(received.inner_text())
    title = received.get_attribute("title")
    page.clock.run_for("03:00")
    assert received.inner_text() == "3 min ago"
    page.clock.run_for("02:00:00")
    assert received.inner_text() == "2 h ago"
    assert received.get_attribute("title") == title  # the exact time does not move


# --- span times -----------------------------------------------------------------------------------

EPOCH_NUMBER = re.compile(r"\b\d{9,}(\.\d+)?\b")
RELATIVE = re.compile(r"just now|in \d+ (s|min|h|d)|\d+ (s|min|h|d) ago")


@pytest.mark.integration
def test_span_detail_shows_offsets_readable_durations_and_the_exact_time(server_factory, page):
    server = server_factory(DASHBOARDS_PUBLIC="True")
    start_ns = 1764399311961996123  # a client that sends nanoseconds
    _in_thread(_store_traces_ns, start_ns)
    page.goto(f"{server.url}/traces/1/")
    started = page.inner_text("dl.trace-facts time")
    assert started == "2025-11-29 06:55:11.961 UTC"

    page.click(".wf-name:text-is('Trace')")
    assert page.inner_text("#span-detail time") == started  # the server's and the script's text
    page.click(".wf-name:text-is('query')")
    detail = page.inner_text("#span-detail")
    assert "+12.3 ms (2025-11-29 06:55:11.974 UTC)" in detail, detail
    assert "+13.8 ms (2025-11-29 06:55:11.975 UTC)" in detail, detail
    assert "1.5 ms" in detail
    assert not EPOCH_NUMBER.search(detail), detail
    for title in page.eval_on_selector_all("#span-detail time", "els => els.map((e) => e.title)"):
        assert title.endswith(" UTC")

    page.click(".wf-event")
    detail = page.inner_text("#span-detail")
    assert "+12.8 ms (2025-11-29 06:55:11.974 UTC)" in detail and not EPOCH_NUMBER.search(detail)


def _store_traces_ns(start):
    from django.db import connection

    from traces.tests.helpers import event, span, store_trace, trace_end, trace_start

    ms = 1_000_000
    store_trace(1, [
        trace_start(start), trace_end(start + 20 * ms),
        *span("q", "query", start + 12_300_000, start + 13_800_000),
        event("cache miss", start + 12_800_000),
    ])
    connection.close()


# --- every page -----------------------------------------------------------------------------------

DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*(\S+))?")
CLOCK = re.compile(r"\b\d{1,2}:\d{2}\b")
MONTH = re.compile(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}\b")


def _fill_every_area():
    from django.db import connection

    from notifications.jobs import run_job
    from notifications.models import Rule
    from notifications.services import raise_notification
    from tracking import services as tracking
    from tracking.models import Project
    from tracking.wire import parse_batch_event

    _store_traces([1569972082.123])
    project, _ = Project.create_with_token("Shop")
    now = datetime.now(UTC).timestamp()
    tracking.ingest_events(project, [parse_batch_event(
        {"time": now - age, "duration_ms": 12, "path": "/", "status": 200}) for age in (5, 70)])
    raise_notification(Rule.RUN_FAILED, "run:1", "Run 1 failed")
    run_job("prune_notifications")
    connection.close()
    return project


def _times_on(page):
    """Every <time> of the page, and every date-time written in its text outside forms and
    data (a filter's example, the JSON a script reads)."""
    return page.evaluate("""() => {
      const texts = [];
      const walker = document.createTreeWalker(document.querySelector("main"), NodeFilter.SHOW_TEXT);
      while (walker.nextNode()) {
        if (!walker.currentNode.parentElement.closest("form, script, template")) {
          texts.push(walker.currentNode.textContent);
        }
      }
      return {
        times: [...document.querySelectorAll("main time")].map((el) => ({
          text: el.textContent, title: el.title, iso: el.getAttribute("datetime")})),
        text: texts.join("\\n"),
      };
    }""")


@pytest.mark.integration
def test_every_time_on_the_main_pages_has_the_zone_and_the_exact_time_on_hover(
        server_factory, page, browser_login, django_user_model, settings):
    from tm_api.models import Machine, Run
    from tm_reporter import Reporter
    from tm_reporter.client import tree

    server = server_factory(DASHBOARDS_PUBLIC="True", TM_ALLOW_ANONYMOUS_MACHINES="True",
                            TIME_ZONE="Europe/Warsaw")
    settings.TIME_ZONE = "Europe/Warsaw"
    holder = {}
    _in_thread(lambda: holder.update(project=_fill_every_area()))
    reporter = Reporter(server.url, "bench rack", timeout=5)
    tests = [tree("/suite", f"0{n}_test.py", "") for n in (1, 2)]
    reporter.dry_run(tree("/suite", "master.py", "", [tree("/suite", "s.py", "", tests, "tests")],
                          "scenarios"))
    reporter.start("/suite", "01_test.py")
    reporter.stop("/suite", "01_test.py", "passed")
    reporter.start("/suite", "02_test.py")
    machine = Machine.objects.get()
    run = Run.objects.get()
    django_user_model.objects.create_superuser("admin", password="pw-123456-x")
    browser_login(page, server, "admin", "pw-123456-x")

    pages = {
        "/traces/": None,
        "/traces/1/": ".wf-name:text-is('span 1')",  # then its span detail, opened below
        "/machines/": None,
        f"/machines/{machine.pk}/": None,
        f"/machines/{machine.pk}/last/": ".tm-stats time",
        f"/machines/runs/{run.pk}/": None,
        "/metrics/": None,
        f"/metrics/{holder['project'].public_id}/": "#requests tbody time, #chart-rate tspan",
        "/notifications/": None,
    }
    zone = " Europe/Warsaw"
    for path, ready in pages.items():
        page.goto(server.url + path)
        for selector in (ready or "").split(", "):
            if selector:
                page.wait_for_selector(selector)
        if path == "/traces/1/":
            page.click(ready)
            page.wait_for_selector("#span-detail time")
        shown = _times_on(page)
        assert shown["times"], f"{path} shows no time"
        for time in shown["times"]:
            assert time["title"].endswith(zone), (path, time)
            assert time["title"] == exact(time["iso"]), (path, time)
            assert time["text"].endswith(zone) or RELATIVE.fullmatch(time["text"]), (path, time)
        # Any other way of writing a time (Django's "Nov. 29, 2026, 8:10 a.m.", a bare
        # "08:10:11", the browser's locale) is a clock outside a date-time with the zone.
        zoned = [m.span() for m in DATE_TIME.finditer(shown["text"]) if m[1] == zone.strip()]
        for clock in CLOCK.finditer(shown["text"]):
            assert any(a <= clock.start() < b for a, b in zoned), (path, shown["text"][
                max(0, clock.start() - 30):clock.end() + 30])
        assert not MONTH.search(shown["text"]), (path, MONTH.search(shown["text"])[0])
