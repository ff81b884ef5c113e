"""Formatting shared by the test-machine pages.

The status order and the markup of badges and status bars are written once, here: these tags
render them on the server, and static/tm/tm.js renders the rows that live frames bring from the
same table, which each page carries as a json_script element ({% tm_format_table %}).
"""

from django import template
from django.utils.html import format_html, format_html_join, json_script

from tm_api import bodies
from tm_api import status as S

register = template.Library()

BADGE = '<span class="badge status-{status}" data-status="{status}">{status}</span>'
BAR = '<div class="tm-bar{extra}" role="img" aria-label="{label}" title="{label}">{segments}</div>'
BAR_SEGMENT = '<span class="status-{status}" style="width:{width}%"></span>'
# A run's progress (bodies.progress): done of planned, a bar, and the time left or taken. The
# time left counts down between reports by at most what the test in progress accounts for.
PROGRESS = (
    '<div class="tm-progress{extra}" data-progress>'
    '<div class="tm-progress-bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
    'aria-valuenow="{percent}" aria-label="{done} of {planned} tests done">'
    '<span style="width:{percent}%"></span></div>'
    '<span class="tm-progress-count">{done} of {planned} ({percent}%)</span>'
    '<span class="tm-eta"{countdown}>{eta}</span></div>'
)
COUNTDOWN = ' data-seconds-left="{seconds_left}" data-running-left="{running_left}"'
FORMAT_TABLE = {
    "priority": list(S.PRIORITY),  # a bar's segments, and a run's counts, in this order
    "ongoing": [status for status in S.PRIORITY if status in S.ONGOING],  # not yet done
    "badge": BADGE, "bar": BAR, "bar_segment": BAR_SEGMENT,
    "progress": PROGRESS, "countdown": COUNTDOWN,
}


@register.simple_tag
def tm_format_table():
    """The table static/tm/tm.js reads (before it, in the page)."""
    return json_script(FORMAT_TABLE, "tm-format")


@register.filter
def human_duration(seconds):
    """2.5 -> "2.5 s", 184 -> "3 min 4 s", 3720 -> "1 h 2 min"; None -> "—"."""
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


@register.simple_tag
def status_bar(statistics, total):
    """A progress bar with one segment per status, in priority order of the roll-up."""
    statistics = statistics or {}
    total = total or 0
    segments = [
        (status, 100 * statistics.get(status, 0) / total, statistics.get(status, 0))
        for status in S.PRIORITY if total and statistics.get(status, 0)
    ]
    title = ", ".join(f"{n} {status}" for status, _, n in segments) or "no tests"
    return format_html(
        BAR, extra="", label=title,
        segments=format_html_join("", BAR_SEGMENT, ({"status": status, "width": f"{width:.3f}"}
                                                    for status, width, _ in segments)),
    )


@register.filter
def done_count(statistics):
    statistics = statistics or {}
    return sum(n for status, n in statistics.items() if status not in S.ONGOING)


@register.simple_tag
def status_badge(status):
    return format_html(BADGE, status=status)


def time_left(seconds) -> str:
    """The time a run has left, as its pages say it (static/tm/tm.js timeLeft says it the same
    way): None while it cannot be told, then to the nearest minute."""
    if seconds is None:
        return "estimating the time left…"
    if seconds < 30:
        return "less than a minute left"
    minutes = int(seconds / 60 + 0.5)
    if minutes < 60:
        return f"about {minutes} min left"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes} min left" if minutes else f"about {hours} h left"


def progress_html(progress: dict, duration, extra: str = ""):
    """The progress widget of a run (PROGRESS) from its bodies.progress and duration."""
    if progress["ongoing"]:
        eta = time_left(progress["seconds_left"])
        countdown = "" if progress["seconds_left"] is None else format_html(
            COUNTDOWN, seconds_left=progress["seconds_left"],
            running_left=progress["running_left"])
    else:
        eta, countdown = ("took " + human_duration(duration) if duration is not None else
                          "ended"), ""
    return format_html(PROGRESS, extra=" " + extra if extra else "", percent=progress["percent"],
                       done=progress["done"], planned=progress["planned"], eta=eta,
                       countdown=countdown)


@register.simple_tag
def run_progress(master, extra=""):
    """{% run_progress master %}: the progress widget of a run (its MasterScenario)."""
    return progress_html(bodies.progress(master), master.duration, extra)
