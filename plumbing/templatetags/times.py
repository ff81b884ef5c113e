"""{% time_exact moment %} and {% time_ago moment %}: the <time> elements of every page, in the
format of plumbing/times.py (see there)."""

from datetime import UTC

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from plumbing.times import EMPTY, as_moment, exact, relative, zone_name

register = template.Library()


def _time_element(value, text, relative_text, empty):
    moment = as_moment(value)
    if moment is None:
        return empty if value in (None, "") else str(value)
    return format_html(
        '<time datetime="{}" title="{}"{}>{}</time>',
        moment.astimezone(UTC).isoformat(), exact(moment),
        mark_safe(" data-relative") if relative_text else "", text(moment),
    )


@register.filter(name="exact_time")
def exact_time_filter(value, precision="s"):
    return exact(value, precision)


@register.simple_tag
def time_exact(value, empty=EMPTY, precision="s"):
    """<time> with the exact moment as its text (and title, for the same hover on every time)."""
    return _time_element(value, lambda moment: exact(moment, precision), False, empty)


@register.simple_tag
def time_ago(value, empty=EMPTY):
    """<time data-relative>3 min ago</time>, exact on hover; times.js keeps the text fresh."""
    return _time_element(value, relative, True, empty)


@register.simple_tag
def time_zone_name():
    return zone_name()
