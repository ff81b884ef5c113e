"""Reading timestamps whose unit only the client knows (pure: no Django import).

The trace websocket protocol's example clients send Unix seconds; other clients send milliseconds,
microseconds or nanoseconds since 1970, or small relative numbers. The unit is guessed from the size
of a Unix-time start: a value near today in one unit is many orders of magnitude away in the
others."""

from datetime import UTC, datetime

# (smallest plausible start, unit name, units per second)
_UNITS = [(1e17, "ns", 1e9), (1e14, "us", 1e6), (1e11, "ms", 1e3)]


def units_per_second(start) -> float:
    for lowest, _, per_second in _UNITS:
        if start is not None and start >= lowest:
            return per_second
    return 1.0


def human_duration(duration, start=None) -> str:
    """'1.5 s', '320 ms', '2 min 5 s', '—' for unknown."""
    if duration is None:
        return "—"
    seconds = float(duration) / units_per_second(start)
    if seconds < 0:
        return "-" + human_duration(-seconds)
    if seconds == 0:
        return "0 s"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    return f"{int(seconds // 86400)} d {int(seconds % 86400 // 3600)} h"


def as_datetime(timestamp):
    """The moment a Unix timestamp (in its guessed unit) stands for; None for relative times."""
    if timestamp is None:
        return None
    seconds = float(timestamp) / units_per_second(timestamp)
    if seconds < 946684800:  # before 2000: a relative clock, not Unix time
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
