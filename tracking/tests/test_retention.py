"""Retention of raw request rows on PostgreSQL: partitioned by the time the request was
received (plumbing/partitions.py), the days past TRACKING_RAW_RETENTION_DAYS dropped whole, rows
deleted only in the day the cutoff falls in. (SQLite's plain table: test_commands.py.)"""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from plumbing import partitions
from tracking import services
from tracking.models import Project, RequestMetric
from tracking.wire import parse_batch_event

pytestmark = [pytest.mark.integration, pytest.mark.django_db, pytest.mark.postgresql]
TABLE = "tracking_requestmetric"


def received(project, *moments):
    services.ingest_events(project, [
        parse_batch_event({"time": moment.timestamp(), "duration_ms": 5, "path": "/cart",
                           "status": 200}) for moment in moments])


def partition_of(moment):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT tableoid::regclass::text FROM {TABLE} "
                       "WHERE received_at = %s", [moment])
        return [row[0] for row in cursor.fetchall()]


def test_raw_requests_live_in_daily_partitions_and_old_days_are_dropped(settings):
    settings.TRACKING_RAW_RETENTION_DAYS = 30
    project = Project(name="shop")
    project.issue_token()
    project.save()
    now = timezone.now()
    # The table as after weeks of use: a partition per day back to 40 days ago.
    with connection.cursor() as cursor:
        for partition in partitions.partitions(TABLE):
            if partition.lower is None and not partition.default:
                cursor.execute(f'ALTER TABLE {TABLE} DETACH PARTITION "{partition.name}"')
                cursor.execute(f'DROP TABLE "{partition.name}"')
    partitions.create_ahead(now=now - timedelta(days=40), days=45, tables=[TABLE])
    cutoff = now - timedelta(days=30)
    cutoff_day = partitions.boundary(cutoff)
    old, straddling_old = cutoff_day - timedelta(days=5), cutoff_day + (cutoff - cutoff_day) / 2
    straddling_kept, recent = cutoff + timedelta(minutes=10), now - timedelta(minutes=1)
    received(project, old, old, straddling_old, straddling_kept, recent)
    received(project, now - timedelta(days=3000))  # no partition of its own: the default one

    assert partition_of(old) == [partitions.partition_name(TABLE, partitions.boundary(old))]
    assert partition_of(now - timedelta(days=3000)) == [f"{TABLE}_default"]
    assert partition_of(recent) == [partitions.partition_name(TABLE, partitions.boundary(recent))]

    with connection.cursor() as cursor:
        # As when the rows were committed long before: their deferred foreign key checks done
        # (a table with checks pending in the transaction cannot be dropped in it).
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ANALYZE {TABLE}")  # a dropped day's rows are counted from statistics
    assert services.prune_raw_requests() == 4
    assert sorted(RequestMetric.objects.values_list("received_at", flat=True)) == [
        straddling_kept, recent]
    left = partitions.partitions(TABLE)
    assert partitions.partition_name(TABLE, partitions.boundary(old)) not in {
        p.name for p in left}
    assert left[0].lower == cutoff_day  # the day the cutoff falls in stays, and those after
