"""Retention of traces (traces.jobs.prune_traces, a step of prune_old_data): a trace older than
TRACE_RETENTION_DAYS goes with its spans and events. On PostgreSQL spans are partitioned by day
(plumbing/partitions.py) and a trace's spans are received when the trace was created, so the
days past the window are dropped whole."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from plumbing import partitions
from traces.jobs import prune_traces
from traces.models import Event, Span, Trace
from traces.tests.helpers import event, span, store_trace, trace_end, trace_start
from traces.tests.test_otlp import client, post_json, request_json, span_json, token  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

TRACE = "5b8efff798038103d269b633813fc60c"


def websocket_trace(trace_id):
    store_trace(trace_id, [trace_start(1), *span("load", "movies_load", 1, 5), event("hit", 2),
                           trace_end(9)])


def age(trace_ids, moment):
    """As if the traces had come at `moment`: their rows and their spans (which move to the
    partition of that time on PostgreSQL)."""
    Trace.objects.filter(id__in=trace_ids).update(created=moment)
    Span.objects.filter(trace_id__in=trace_ids).update(received=moment)


def test_an_old_trace_goes_with_its_spans_and_events(settings, client, token):  # noqa: F811
    settings.TRACE_RETENTION_DAYS = 30
    websocket_trace(1)
    websocket_trace(2)
    assert post_json(client, token, request_json(span_json("eee19b7ec3c1b174"))).status_code == 200
    otlp = Trace.objects.get(trace_id=TRACE).id
    age([1, otlp], timezone.now() - timedelta(days=31))

    assert prune_traces() == 2
    assert list(Trace.objects.values_list("id", flat=True)) == [2]
    assert list(Span.objects.values_list("trace_id", flat=True)) == [2]
    assert list(Event.objects.values_list("trace_id", flat=True)) == [2]
    assert prune_traces() == 0


@pytest.mark.postgresql
def test_spans_are_received_when_their_trace_was_and_stored_once(client, token):  # noqa: F811
    assert post_json(client, token, request_json(span_json("eee19b7ec3c1b174"))).status_code == 200
    trace = Trace.objects.get(trace_id=TRACE)
    # Sent again later (an exporter retrying), with a child: the first span is not stored twice.
    assert post_json(client, token, request_json(
        span_json("eee19b7ec3c1b174"), span_json("eee19b7ec3c1b173", "eee19b7ec3c1b174"),
    )).status_code == 200
    assert sorted(trace.spans.values_list("group_id", "received")) == [
        ("eee19b7ec3c1b173", trace.created), ("eee19b7ec3c1b174", trace.created)]
    # The trace websocket protocol's spans too, a span's end arriving in a later frame.
    store_trace(3, [trace_start(1), {"type": "SPAN_START", "timestamp": 1, "group_id": "a",
                                     "name": "load"}])
    store_trace(3, [{"type": "SPAN_END", "timestamp": 5, "group_id": "a"}, trace_end(9)])
    websocket = Trace.objects.get(id=3)
    assert list(websocket.spans.values_list("received", "end")) == [(websocket.created, 5)]
    assert partitions.is_partitioned("traces_span")


@pytest.mark.postgresql
def test_days_past_the_window_are_dropped_whole(settings):
    settings.TRACE_RETENTION_DAYS = 30
    now = timezone.now()
    cutoff_day = partitions.boundary(now - timedelta(days=30))
    # The table as after weeks of use: a partition per day (the test database's partition of
    # the time before its migration holds no row of this test).
    with connection.cursor() as cursor:
        for partition in partitions.partitions("traces_span"):
            if partition.lower is None and not partition.default:
                cursor.execute(f'ALTER TABLE traces_span DETACH PARTITION "{partition.name}"')
                cursor.execute(f'DROP TABLE "{partition.name}"')
    partitions.create_ahead(now=now - timedelta(days=40), days=45, tables=["traces_span"])
    for trace_id in (1, 2, 3, 4):
        websocket_trace(trace_id)
    age([1], cutoff_day - timedelta(days=3))  # a whole day past the window
    age([2], cutoff_day + (now - timedelta(days=30) - cutoff_day) / 2)  # on the cutoff's day
    age([3], now - timedelta(days=29))
    before = {p.name for p in partitions.partitions("traces_span")}
    old_day = partitions.partition_name("traces_span", cutoff_day - timedelta(days=3))
    assert old_day in before

    assert prune_traces() == 2
    assert sorted(Trace.objects.values_list("id", flat=True)) == [3, 4]
    assert sorted(Span.objects.values_list("trace_id", flat=True)) == [3, 4]
    assert sorted(Event.objects.values_list("trace_id", flat=True)) == [3, 4]
    left = partitions.partitions("traces_span")
    gone = before - {p.name for p in left}
    assert old_day in gone
    assert all(p.default or p.upper > now - timedelta(days=30) for p in left)
    assert partitions.partition_name("traces_span", cutoff_day) not in gone  # it straddles
    assert len(gone) == 10  # the days from 40 days ago to the cutoff's day


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_trace_rows_go_on_a_connection_of_their_own(settings):
    """The job's own case (no caller's transaction): the trace rows are deleted on a thread with
    its own connection while the spans' partitions are pruned on this one; both commit."""
    settings.TRACE_RETENTION_DAYS = 30
    for trace_id in (1, 2):
        websocket_trace(trace_id)
    age([1], timezone.now() - timedelta(days=31))
    assert not connection.in_atomic_block

    assert prune_traces() == 1
    assert list(Trace.objects.values_list("id", flat=True)) == [2]
    assert list(Span.objects.values_list("trace_id", flat=True)) == [2]
    assert list(Event.objects.values_list("trace_id", flat=True)) == [2]
    assert prune_traces() == 0


def test_the_daily_job_forgets_the_services_whose_spans_retention_removed(
        settings, client, token):  # noqa: F811
    from notifications.jobs import run_job

    settings.TRACE_RETENTION_DAYS = 30
    post_json(client, token, request_json(span_json("eee19b7ec3c1b174"), service="web"))
    other = {**span_json("eee19b7ec3c1b173"), "traceId": "0af7651916cd43dd8448eb211c80319c"}
    post_json(client, token, request_json(other, service="cart"))
    store_trace(7, [{**trace_start(1), "service": "api"}, trace_end(2)])  # a trace's service
    assert run_job("forget_unused_services").last_detail == (
        "0 service name(s) no stored span has, forgotten")
    # Retention removes the cart trace and its span; the picker still offers the name until
    # the job runs.
    age([Trace.objects.get(trace_id=other["traceId"]).id],
        timezone.now() - timedelta(days=31))
    assert prune_traces() == 1
    assert client.get("/api/traces/services/").json() == {"services": ["api", "cart", "web"]}
    record = run_job("forget_unused_services")
    assert (record.last_outcome, record.last_detail) == (
        "ok", "1 service name(s) no stored span has, forgotten")
    assert client.get("/api/traces/services/").json() == {"services": ["api", "web"]}
    # A batch naming it again brings it back.
    post_json(client, token, request_json(span_json("eee19b7ec3c1b172"), service="cart"))
    assert client.get("/api/traces/services/").json() == {"services": ["api", "cart", "web"]}
