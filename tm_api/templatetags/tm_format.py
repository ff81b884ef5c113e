"""Formatting shared by the test-machine pages (the same rules as static/tm/tm.js)."""

from django import template
from django.utils.html import format_html, format_html_join

from tm_api import status as S

register = template.Library()


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
        '<div class="tm-bar" role="img" aria-label="{}" title="{}">{}</div>', title, title,
        format_html_join("", '<span class="status-{}" style="width:{}%"></span>',
                         ((status, f"{width:.3f}") for status, width, _ in segments)),
    )


@register.filter
def done_count(statistics):
    statistics = statistics or {}
    return sum(n for status, n in statistics.items() if status not in S.ONGOING)


@register.inclusion_tag("tm/_badge.html")
def status_badge(status):
    return {"status": status}
