"""Summaries read from day, hour, minute and all-views rollup cells: checked against brute force
over the raw events, for the all-time window and random windows, on the suite's backend."""

import math
import time
from datetime import UTC, datetime

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracking import aggregation as agg
from tracking import services
from tracking.models import Project
from tracking.wire import RequestEvent

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

BASE = (time.time() // 3600 - 40) * 3600  # whole hour, 40 hours ago: room for hour cells
SPAN = 30 * 3600

events = st.lists(
    st.tuples(
        st.floats(min_value=BASE, max_value=BASE + SPAN, allow_nan=False),
        st.sampled_from(["home", "api:list", ""]),
        # A few repeated durations, so that buckets hold more than one request.
        st.one_of(st.sampled_from([0.5, 3.0, 20.0, 250.0]),
                  st.floats(min_value=agg.MIN_MS, max_value=60_000, allow_nan=False)),
        st.sampled_from([200, 302, 404, 429, 500, 503]),
    ),
    min_size=1, max_size=60,
)
edges = st.integers(min_value=-3600, max_value=SPAN + 3600)


def exact_percentile(values, q):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


def assert_close(reported, durations, q):
    exact = exact_percentile(durations, q)
    assert abs(reported - exact) <= agg.RELATIVE_ERROR * exact * (1 + 1e-9)


def check(stats, members):
    assert stats["count"] == len(members)
    assert stats["client_errors"] == sum(1 for e in members if 400 <= e[3] < 500)
    assert stats["server_errors"] == sum(1 for e in members if e[3] >= 500)
    if not members:
        assert stats["p95_ms"] is None
        return
    for name, q in agg.PERCENTILES:
        assert_close(stats[name], [e[2] for e in members], q)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events, edges, edges)
def test_summary_over_any_window_matches_brute_force(db, batch, start, length):
    with transaction.atomic():
        project, _ = Project.create_with_token("Shop")
        services.ingest_events(project, [
            RequestEvent(timestamp=t, duration_ms=d, path="/", status_code=s, view_name=v)
            for t, v, d, s in batch])
        since = datetime.fromtimestamp(BASE + start, UTC)
        until = datetime.fromtimestamp(BASE + start + abs(length) + 60, UTC)
        for window in (services.resolve_window(project, None, None),
                       services.resolve_window(project, since, until)):
            low, high = window.since.timestamp(), window.until.timestamp()
            inside = [e for e in batch if low <= e[0] < high]
            summary = services.summarize(project, window)
            check(summary, inside)
            views = {v["view_name"]: v for v in summary["views"]}
            assert set(views) == {e[1] for e in inside}
            for name, stats in views.items():
                check(stats, [e for e in inside if e[1] == name])
            step = summary["series"]["step_seconds"]
            for point in summary["series"]["points"]:
                start_s = point["start"].timestamp()
                check(point, [e for e in inside if start_s <= e[0] < start_s + step])
            assert sum(p["count"] for p in summary["series"]["points"]) == len(inside)
        transaction.set_rollback(True)
