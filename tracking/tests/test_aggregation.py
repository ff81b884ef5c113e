"""Rollups against brute force: counts exact, percentiles within the bucket error bound."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracking import aggregation as agg

pytestmark = pytest.mark.unit

durations = st.floats(min_value=agg.MIN_MS, max_value=agg.MAX_MS * 0.999, allow_nan=False)
statuses = st.sampled_from([200, 201, 204, 301, 304, 400, 401, 404, 429, 500, 502, 503])
views = st.sampled_from(["home", "api:list", "api:detail", ""])
timestamps = st.floats(min_value=1.6e9, max_value=1.6e9 + 5 * 3600, allow_nan=False)
events = st.lists(st.tuples(timestamps, views, durations, statuses), min_size=1, max_size=300)


def exact_percentile(values, q):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


def within_bound(reported, exact):
    return abs(reported - exact) <= agg.RELATIVE_ERROR * exact * (1 + 1e-9)


@given(durations)
def test_every_bucket_value_is_within_the_error_bound(duration):
    assert within_bound(agg.bucket_value(agg.bucket_of(duration)), duration)


def test_buckets_are_ordered_and_bounded():
    assert agg.bucket_of(0) == 0 and agg.bucket_of(-1) == 0 and agg.bucket_of(float("nan")) == 0
    assert agg.bucket_of(10 * agg.MAX_MS) == agg.BUCKET_COUNT - 1
    values = [agg.bucket_value(i) for i in range(agg.BUCKET_COUNT)]
    assert values == sorted(values) and len(set(values)) == agg.BUCKET_COUNT


@settings(max_examples=60)
@given(events, st.sampled_from([60, 3600]))
def test_rollups_merged_over_any_window_match_brute_force(batch, period):
    """Cells built per period and view, then merged over the whole set, give the same counts as
    counting the raw events, and percentiles within the error bound of the exact ones."""
    cells = agg.rollup_cells(batch, period)
    for (start, view), cell in cells.items():
        members = [e for e in batch if agg.floor_to(e[0], period) == start and e[1] == view]
        assert cell.count == len(members)
    merged = agg.Cell()
    for cell in cells.values():
        merged.merge(cell)
    stats = merged.stats()
    assert stats["count"] == len(batch)
    assert stats["client_errors"] == sum(1 for e in batch if 400 <= e[3] < 500)
    assert stats["server_errors"] == sum(1 for e in batch if e[3] >= 500)
    assert stats["error_rate"] == pytest.approx(stats["server_errors"] / len(batch))
    assert stats["mean_ms"] == pytest.approx(sum(e[2] for e in batch) / len(batch))
    all_durations = [e[2] for e in batch]
    for name, q in agg.PERCENTILES:
        assert within_bound(stats[name], exact_percentile(all_durations, q)), name


@settings(max_examples=40)
@given(events, views)
def test_per_view_percentiles_from_merged_periods(batch, view):
    """Merging a view's per-minute histograms equals the histogram of all its requests."""
    cells = agg.rollup_cells(batch, 60)
    histogram = agg.merge_histograms(
        {str(k): v for k, v in c.histogram.items()}  # as they come back from JSON
        for (start, v_name), c in cells.items() if v_name == view
    )
    values = [e[2] for e in batch if e[1] == view]
    if not values:
        assert agg.percentile(histogram, 0.5) is None
        return
    for _, q in agg.PERCENTILES:
        assert within_bound(agg.percentile(histogram, q), exact_percentile(values, q))


@given(st.integers(0, 100_000), st.integers(1, 100_000))
def test_cover_levels_splits_a_window_into_aligned_periods_largest_in_the_middle(
        start_minute, length_minutes):
    since = 1_600_000_000 // 60 * 60 + start_minute * 60
    until = since + length_minutes * 60
    pieces = agg.cover_levels(since, until, (86400, 3600, 60))
    assert pieces[0][1] == since and pieces[-1][2] == until
    for (_, _, b), (_, c, _) in zip(pieces, pieces[1:], strict=False):
        assert b == c  # contiguous, no overlap
    for period, start, end in pieces:
        assert start % period == 0 and end % period == 0 and start < end
    # A period is used only where no larger one fits: fewer than two of its pieces per edge.
    for period in (3600, 60):
        assert sum(1 for p, _, _ in pieces if p == period) <= 2 * (86400 // period)


def test_stats_of_nothing():
    stats = agg.Cell().stats()
    assert stats["count"] == 0 and stats["error_rate"] == 0.0 and stats["p95_ms"] is None


def test_choose_step():
    assert agg.choose_step(3600) == 60 and agg.choose_step(86400) == 3600
    assert agg.choose_step(90 * 86400) == 86400
    # 26 years: whole days, at most about 2,000 points.
    step = agg.choose_step(26 * 365 * 86400)
    assert step % 86400 == 0 and 26 * 365 * 86400 / step <= agg.MAX_DAILY_POINTS
