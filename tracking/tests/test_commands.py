import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tracking import services
from tracking.models import Project, RequestMetric, RequestRollup
from tracking.wire import parse_batch_event

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_project_prints_one_json_object_and_stores_only_a_digest():
    output = run("create_project", "Shop front")
    created = json.loads(output)
    assert set(created) == {"id", "token"} and output.count("\n") <= 1
    project = Project.objects.get(public_id=created["id"])
    assert project.name == "Shop front"
    assert created["token"] not in project.token_digest and project.token_matches(created["token"])
    assert services.project_for_token(created["token"]) == project
    with pytest.raises(CommandError):
        run("create_project", "  ")


def test_rotate_project_token():
    created = json.loads(run("create_project", "Shop"))
    rotated = json.loads(run("rotate_project_token", created["id"]))
    assert rotated["id"] == created["id"] and rotated["token"] != created["token"]
    assert services.project_for_token(created["token"]) is None
    assert services.project_for_token(rotated["token"]).public_id.hex == created["id"].replace("-", "")
    with pytest.raises(CommandError):
        run("rotate_project_token", "nope")


def test_prune_deletes_old_raw_rows_and_keeps_rollups(settings):
    settings.TRACKING_RAW_RETENTION_DAYS = 7
    project, _ = Project.create_with_token("Shop")
    now = timezone.now().timestamp()
    services.ingest_events(project, [
        parse_batch_event({"time": now - days * 86400, "duration_ms": 1, "path": "/",
                           "status": 200}) for days in (0, 1, 8, 30)
    ])
    assert "Deleted 2 request(s) older than 7 day(s)." in run("prune_request_metrics")
    assert RequestMetric.objects.count() == 2
    assert RequestMetric.objects.filter(received_at__lt=timezone.now() - timedelta(days=7)).count() == 0
    assert sum(RequestRollup.objects.filter(period_seconds=60).values_list("count", flat=True)) == 4
    assert "Deleted 2 request(s) older than 0 day(s)." in run("prune_request_metrics", "--days", "0")


def test_demo_metrics_fills_a_project_through_the_ingest_service():
    created = json.loads(run("demo_metrics", "--requests", "600", "--hours", "2", "--seed", "1"))
    project = Project.objects.get(public_id=created["id"])
    assert services.project_for_token(created["token"]) == project
    assert RequestMetric.objects.filter(project=project).count() == 600
    window = services.resolve_window(project, None, None)
    summary = services.summarize(project, window)
    assert summary["count"] == 600 and summary["server_errors"] > 0
    assert len(summary["views"]) >= 6
    again = json.loads(run("demo_metrics", "--requests", "10"))
    assert again["id"] == created["id"] and again["token"] != created["token"]
