"""How a moment is shown to a person, on every page and in every notification:
"2026-11-29 06:55:11 UTC" (ISO-like date, 24-hour time, then the zone the site shows times in,
settings.TIME_ZONE), or "3 min ago" where recency matters. static/js/times.js gives the same text
for the same moment to the times that live scripts insert, so a row added by a socket frame reads
like its neighbours; plumbing/templatetags/times.py puts them in pages."""

from datetime import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime

EMPTY = "—"
# Past this age a date says more than "94 d ago".
RELATIVE_LIMIT = 30 * 86400


def as_moment(value):
    """An aware datetime for a datetime or an ISO 8601 string; None for what is not a moment.
    A moment without a zone is read in the site's zone, as Django does."""
    if isinstance(value, str):
        try:
            value = parse_datetime(value.strip())
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


def zone_name():
    return timezone.get_current_timezone_name()


def exact(value, precision="s"):
    """'2026-11-29 06:55:11 UTC'; precision "ms" adds milliseconds (span times)."""
    moment = as_moment(value)
    if moment is None:
        return EMPTY if value in (None, "") else str(value)
    local = timezone.localtime(moment)
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    if precision == "ms":
        text += f".{local.microsecond // 1000:03d}"
    return f"{text} {zone_name()}"


def relative(value, now=None):
    """'just now', '42 s ago', '3 min ago', '5 h ago', '12 d ago' ('in 3 min' ahead of now:
    a client's clock may run fast); the exact time past 30 days."""
    moment = as_moment(value)
    if moment is None:
        return exact(value)
    seconds = ((now or timezone.now()) - moment).total_seconds()
    age = abs(seconds)
    if age < 10:
        return "just now"
    if age >= RELATIVE_LIMIT:
        return exact(moment)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if age >= size:
            amount = f"{int(age // size)} {unit}"
            break
    return f"{amount} ago" if seconds > 0 else f"in {amount}"
