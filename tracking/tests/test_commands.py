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
    # Again: the same project and token (a tracker pointed at it keeps working), topped up with
    # the seconds since the first run only, not another 600.
    again = json.loads(run("demo_metrics", "--requests", "600", "--hours", "2"))
    assert again == created and Project.objects.filter(name="Demo shop").count() == 1
    assert services.project_for_token(created["token"]) == project
    assert 600 <= RequestMetric.objects.filter(project=project).count() < 610


def test_demo_metrics_reset_deletes_its_project_only_and_starts_over():
    created = json.loads(run("demo_metrics", "--requests", "50", "--hours", "1"))
    other = json.loads(run("create_project", "Shop"))
    reset = json.loads(run("demo_metrics", "--requests", "80", "--hours", "1", "--reset"))
    assert reset["id"] != created["id"] and reset["token"] == created["token"]
    assert not Project.objects.filter(public_id=created["id"]).exists()
    assert RequestMetric.objects.filter(project__public_id=reset["id"]).count() == 80
    assert services.project_for_token(other["token"]).name == "Shop"


def test_demo_metrics_keeps_the_token_of_a_demo_project_it_did_not_make():
    # A "Demo shop" of an older install: its token was shown once; it is not rotated.
    project, token = Project.create_with_token("Demo shop")
    again = json.loads(run("demo_metrics", "--requests", "20", "--hours", "1"))
    assert again == {"id": str(project.public_id), "token": None}
    assert services.project_for_token(token) == project


def test_a_project_found_by_its_token_is_kept_and_forgotten_when_saved_or_deleted(settings):
    """services.project_for_token keeps what it found PROJECT_TOKEN_CACHE_SECONDS: no query
    for a token looked up again, none kept for an unknown token or with the cache off, and a
    project saved (its token rotated) or deleted in this process is forgotten at once."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    project, token = Project.create_with_token("Shop")
    assert services.project_for_token(token) == project
    with CaptureQueriesContext(connection) as queries:
        assert services.project_for_token(token) == project
        assert services.project_for_token("rat_unknown") is None
    assert len(queries) == 1  # the unknown token's
    new = services.rotate_token(project)
    assert services.project_for_token(token) is None
    assert services.project_for_token(new) == project
    project.delete()
    assert services.project_for_token(new) is None
    assert services.found_projects.found == {}
    settings.PROJECT_TOKEN_CACHE_SECONDS = 0
    other, token = Project.create_with_token("Other")
    assert services.project_for_token(token) == other
    assert services.found_projects.found == {}
