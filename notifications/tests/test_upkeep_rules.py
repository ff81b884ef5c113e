"""Project limits, retention and the digest: each job fires once and is safe to run again."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from idempotency.models import IdempotentRequest
from notifications.jobs import run_job
from notifications.models import Channel, Notification
from tm_api import services as tm
from traces.models import Trace
from tracking import services as tracking
from tracking.models import Project, RequestMetric
from tracking.wire import parse_batch_event

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def requests_now(project, count, status=200, duration=20.0, seconds_ago=30):
    now = time.time()
    tracking.ingest_events(project, [
        parse_batch_event({"time": now - seconds_ago, "duration_ms": duration, "path": "/cart",
                           "status": status, "view": "cart", "method": "GET"})
        for _ in range(count)
    ])


@pytest.fixture
def shop():
    project, _ = Project.create_with_token("Shop")
    Channel.objects.create(name="ops", kind="slack", url="http://127.0.0.1:1/",
                           rules=["project_degraded"], projects=str(project.public_id))
    return project


def test_a_healthy_project_raises_nothing(shop):
    requests_now(shop, 50)
    assert run_job("check_projects").last_detail == "every project within its limits"
    assert not Notification.objects.exists()


def test_error_rate_over_the_limit_notifies_once_per_cooldown(shop, settings):
    settings.PROJECT_ALERT_ERROR_RATE = 0.05
    requests_now(shop, 40)
    requests_now(shop, 10, status=503)
    assert "Shop: error_rate" in run_job("check_projects").last_detail
    notification = Notification.objects.get()
    assert notification.rule == "project_degraded"
    assert notification.title.startswith("Shop: error rate 20.0% (limit 5.0%)")
    assert notification.deliveries.count() == 1
    assert notification.link.endswith(f"/metrics/{shop.public_id}/")
    run_job("check_projects")
    assert Notification.objects.count() == 1  # cooldown


def test_slow_p95_and_too_few_requests(shop, settings):
    settings.PROJECT_ALERT_P95_MS = 500
    requests_now(shop, 5, duration=3000)
    run_job("check_projects")
    assert not Notification.objects.exists()  # 5 < PROJECT_ALERT_MIN_REQUESTS
    requests_now(shop, 30, duration=3000)
    run_job("check_projects")
    assert "p95 latency" in Notification.objects.get().title


def test_old_requests_outside_the_window_do_not_count(shop, settings):
    settings.PROJECT_ALERT_WINDOW_MINUTES = 5
    requests_now(shop, 50, status=500, seconds_ago=3600)
    run_job("check_projects")
    assert not Notification.objects.exists()


def test_prune_old_data_keeps_recent_rows_and_can_run_twice(shop, settings):
    settings.TRACKING_RAW_RETENTION_DAYS = 30
    settings.TRACE_RETENTION_DAYS = 30
    settings.TM_RUN_RETENTION_DAYS = 30
    requests_now(shop, 3, seconds_ago=0)
    old_time = timezone.now() - timedelta(days=40)
    requests_now(shop, 2, seconds_ago=0)
    RequestMetric.objects.filter(pk__in=list(RequestMetric.objects.values_list("pk", flat=True)[:2])
                                 ).update(received_at=old_time)
    Trace.objects.create(id=1)
    Trace.objects.create(id=2)
    Trace.objects.filter(id=1).update(created=old_time)
    old_run = tm.record_dry_run("m1", timezone.now(), {"file_path": "/", "file_name": "a.py",
                                                        "script": "", "scenarios": None})
    tm.record_dry_run("m1", timezone.now(), {"file_path": "/", "file_name": "b.py",
                                             "script": "", "scenarios": []})
    type(old_run).objects.filter(pk=old_run.pk).update(received=old_time)
    IdempotentRequest.objects.create(scope="tm_api:m1", key="old", status=202)
    IdempotentRequest.objects.create(scope="tm_api:m1", key="new", status=202)
    IdempotentRequest.objects.filter(key="old").update(
        created=timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS, minutes=1))
    detail = run_job("prune_old_data").last_detail
    assert detail == "2 raw requests, 1 traces, 1 runs and 1 idempotency keys deleted"
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["new"]
    assert RequestMetric.objects.count() == 3
    assert list(Trace.objects.values_list("id", flat=True)) == [2]
    assert type(old_run).objects.count() == 1
    assert run_job("prune_old_data").last_detail == (
        "0 raw requests, 0 traces, 0 runs and 0 idempotency keys deleted")


def test_daily_digest_once_a_day(shop):
    Channel.objects.create(name="digest", kind="slack", url="http://127.0.0.1:1/",
                           rules=["daily_digest"])
    requests_now(shop, 7)
    requests_now(shop, 3, status=500)
    Trace.objects.create(id=5)
    detail = run_job("daily_digest").last_detail
    assert "Tracked requests: 10, 3 answered 5xx." in detail
    assert "Traces: 1 received" in detail
    run_job("daily_digest")
    digest = Notification.objects.get(rule="daily_digest")
    assert digest.deliveries.get().channel.name == "digest"


def test_compact_rollups_drops_old_minute_cells_and_keeps_the_history(shop, settings):
    from tracking.models import RequestRollup, RequestSeriesRollup

    settings.TRACKING_MINUTE_ROLLUP_DAYS = 30
    requests_now(shop, 4, seconds_ago=40 * 86400)
    requests_now(shop, 6)
    window = tracking.Window(timezone.now() - timedelta(days=60), timezone.now())
    before = tracking.summarize(shop, window)["count"]
    old_minutes = RequestRollup.objects.filter(
        period_seconds=60, period_start__lt=timezone.now() - timedelta(days=30)).count()
    assert old_minutes == 1
    assert run_job("compact_rollups").last_detail == "2 minute rollup cells deleted"
    assert not RequestSeriesRollup.objects.filter(
        period_seconds=60, period_start__lt=timezone.now() - timedelta(days=30)).exists()
    assert RequestRollup.objects.filter(period_seconds=60).count() == 1  # the recent minute
    assert tracking.summarize(shop, window)["count"] == before == 10  # hours and days hold it
    assert run_job("compact_rollups").last_detail == "0 minute rollup cells deleted"
