"""The dates this server accepts from clients, one rule for every way in: a machine's report, a
filter of a page or of the API, a metrics window. No Django import: pure modules use it.

Nothing is stored before 1970 or after 2199, and a date near year 1 or 9999 breaks zone
arithmetic (0001-01-01T00:00+14:00 is year 0 in UTC, which PostgreSQL stores and Python cannot
read back). So the rule is on the year as written, before any conversion: a few hours either
side of the range in UTC are harmless, an overflow is not.
"""

from datetime import datetime

EARLIEST_YEAR = 1970
LATEST_YEAR = 2199
RANGE = f"between {EARLIEST_YEAR}-01-01 and {LATEST_YEAR + 1}-01-01"


def accepted(moment: datetime) -> bool:
    """Whether `moment`, as written (naive or in its own zone), falls in 1970 to 2199."""
    return EARLIEST_YEAR <= moment.year <= LATEST_YEAR
