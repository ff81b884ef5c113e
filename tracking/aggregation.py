"""Request-metric aggregation: latency histograms, rollup cells and summaries. No Django here.

Latency is kept in a histogram with fixed log-spaced buckets (the DDSketch layout): bucket `i`
holds durations in (GAMMA**(k-1), GAMMA**k] milliseconds with k = i + _OFFSET; index 0 also holds
everything below MIN_MS and the last index everything above MAX_MS. Two histograms merge
by adding counts bucket by bucket, so a percentile over any window and any set of views comes
from summing the stored per-minute (or per-hour) histograms, never from the raw rows.

Error bound: a percentile is reported as the bucket's representative value
2 * GAMMA**i / (GAMMA + 1), which is within RELATIVE_ERROR (5 %) of every duration in that
bucket. So a reported percentile is within 5 % of the exact order statistic (the
ceil(q * n)-th smallest duration), for durations between MIN_MS and MAX_MS. Below MIN_MS it
reports about MIN_MS; above MAX_MS about MAX_MS.

The layout (RELATIVE_ERROR, MIN_MS, MAX_MS) is part of the stored data: changing it needs a data
migration that rebuilds the rollups from raw rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

RELATIVE_ERROR = 0.05
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(GAMMA)
MIN_MS = 0.01  # 10 µs: anything faster is "instant" for a web request
MAX_MS = 3_600_000.0  # one hour
_OFFSET = math.ceil(math.log(MIN_MS) / _LOG_GAMMA)
BUCKET_COUNT = math.ceil(math.log(MAX_MS) / _LOG_GAMMA) - _OFFSET + 1

PERCENTILES = (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99))


def bucket_of(duration_ms: float) -> int:
    """Index of the bucket that counts `duration_ms`."""
    if not duration_ms > MIN_MS:  # also catches NaN
        return 0
    if duration_ms >= MAX_MS:
        return BUCKET_COUNT - 1
    index = math.ceil(math.log(duration_ms) / _LOG_GAMMA) - _OFFSET
    return min(max(index, 0), BUCKET_COUNT - 1)


def bucket_value(index: int) -> float:
    """The duration a bucket stands for: within RELATIVE_ERROR of everything in it."""
    index = min(max(index, 0), BUCKET_COUNT - 1)
    return 2 * GAMMA ** (index + _OFFSET) / (GAMMA + 1)


Histogram = dict[int, int]


def merge_histograms(histograms: Iterable[Mapping]) -> Histogram:
    """Sum histograms bucket by bucket. Keys may be strings (as they come back from JSON)."""
    merged: Histogram = {}
    for histogram in histograms:
        for key, count in histogram.items():
            index = int(key)
            merged[index] = merged.get(index, 0) + count
    return merged


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) as the ceil(q * n)-th smallest value; None when empty."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return bucket_value(index)
    return bucket_value(max(histogram))  # unreachable unless counts are negative


@dataclass
class Cell:
    """Counts of one rollup cell: one project, one period (minute or hour), one view."""

    count: int = 0
    client_errors: int = 0  # 4xx
    server_errors: int = 0  # 5xx
    duration_sum_ms: float = 0.0
    histogram: Histogram = field(default_factory=dict)

    def add(self, duration_ms: float, status_code: int) -> None:
        self.count += 1
        if 400 <= status_code < 500:
            self.client_errors += 1
        elif status_code >= 500:
            self.server_errors += 1
        self.duration_sum_ms += duration_ms
        index = bucket_of(duration_ms)
        self.histogram[index] = self.histogram.get(index, 0) + 1

    def merge(self, other: Cell) -> Cell:
        """Add `other` in. Histogram keys are kept as given (strings when read back from JSON)
        and normalised only when a percentile is asked for: summaries merge thousands of rows."""
        self.count += other.count
        self.client_errors += other.client_errors
        self.server_errors += other.server_errors
        self.duration_sum_ms += other.duration_sum_ms
        histogram = self.histogram
        get = histogram.get
        for index, count in other.histogram.items():
            histogram[index] = get(index, 0) + count
        return self

    def stats(self) -> dict:
        """What the read API and the pages show for a set of requests."""
        count = self.count
        result = {
            "count": count,
            "client_errors": self.client_errors,
            "server_errors": self.server_errors,
            "error_rate": self.server_errors / count if count else 0.0,
            "client_error_rate": self.client_errors / count if count else 0.0,
            "mean_ms": self.duration_sum_ms / count if count else None,
        }
        histogram = merge_histograms([self.histogram])  # int keys, whatever they came as
        for name, q in PERCENTILES:
            result[name] = percentile(histogram, q)
        return result


def floor_to(timestamp: float, period_seconds: int) -> int:
    """Start (unix seconds) of the rollup period containing `timestamp`."""
    return int(timestamp // period_seconds) * period_seconds


def rollup_cells(events: Iterable[tuple[float, str, float, int]], period_seconds: int) -> dict:
    """Group (timestamp, view_name, duration_ms, status_code) into {(period_start, view): Cell}."""
    cells: dict[tuple[int, str], Cell] = {}
    for timestamp, view_name, duration_ms, status_code in events:
        key = (floor_to(timestamp, period_seconds), view_name)
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = Cell()
        cell.add(duration_ms, status_code)
    return cells


MAX_DAILY_POINTS = 2000


def choose_step(window_seconds: float) -> int:
    """Series resolution for a window: minutes up to six hours (plus the minute a window gains
    when widened to whole minutes), hours up to 60 days, days beyond; past MAX_DAILY_POINTS days,
    whole numbers of days, so that a series never has more than about 2,000 points (a project
    with one request in 2000 and one today made 230,000 hourly points: seconds of work)."""
    if window_seconds <= 6 * 3600 + 60:
        return 60
    if window_seconds <= 60 * 86400 + 3600:
        return 3600
    return 86400 * max(1, -(-int(window_seconds) // (86400 * MAX_DAILY_POINTS)))


def cover_levels(since: int, until: int, periods: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Split [since, until) (whole minutes, unix seconds) into as few aligned periods as the
    rollup levels `periods` allow (largest first, e.g. (86400, 3600, 60)): whole days in the
    middle, whole hours next to them, minutes at the edges.

    Returns [(period_seconds, from, to), ...], half-open, contiguous, covering the window.
    """
    if since >= until:
        return []
    period, smaller = periods[0], periods[1:]
    if not smaller:
        return [(period, since, until)]
    first = -(-since // period) * period
    last = (until // period) * period
    if last - first < period:
        return cover_levels(since, until, smaller)
    return (cover_levels(since, first, smaller) + [(period, first, last)]
            + cover_levels(last, until, smaller))
