from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from notifications.jobs import JOBS, run_job
from notifications.models import Channel, Delivery, Job, Notification, Rule
from notifications.services import raise_notification

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_run_job_records_the_outcome_and_skips_while_leased():
    record = run_job("requeue_deliveries")
    assert record.last_outcome == "ok" and record.runs == 1 and record.lease_until is None
    Job.objects.filter(name="requeue_deliveries").update(
        lease_until=timezone.now() + timedelta(minutes=5)
    )
    skipped = run_job("requeue_deliveries")
    assert skipped.last_outcome == "skipped" and skipped.runs == 1
    # An expired lease (a run that died) does not block forever.
    Job.objects.filter(name="requeue_deliveries").update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert run_job("requeue_deliveries").last_outcome == "ok"


def test_a_failing_job_is_recorded_and_releases_its_lease(monkeypatch):
    from notifications import jobs

    def broken():
        raise RuntimeError("disk full")

    monkeypatch.setitem(JOBS, "broken", jobs.ScheduledJob("broken", broken, "* * * * *",
                                                          timedelta(minutes=1), "test"))
    record = run_job("broken")
    assert record.last_outcome == "failed" and "disk full" in record.last_detail
    assert record.lease_until is None


def test_requeue_deliveries_revives_stalled_sends_and_is_idempotent():
    channel = Channel.objects.create(name="c", kind="slack", url="http://127.0.0.1:1/x",
                                     rules=["run_failed"])
    raise_notification(Rule.RUN_FAILED, "run:1", "t")
    Delivery.objects.update(state="sending", claimed_until=timezone.now() - timedelta(minutes=1))
    assert "1 stalled" in run_job("requeue_deliveries").last_detail
    assert Delivery.objects.get().state == "pending"
    assert "0 stalled and 0 overdue" in run_job("requeue_deliveries").last_detail
    assert channel.deliveries.count() == 1


def test_run_job_command_lists_and_runs(capsys):
    call_command("run_job", "--list")
    assert "requeue_deliveries" in capsys.readouterr().out
    call_command("run_job", "prune_notifications")
    assert "prune_notifications: ok" in capsys.readouterr().out


def test_prune_notifications_keeps_recent_ones(settings):
    settings.NOTIFY_RETENTION_DAYS = 30
    old = raise_notification(Rule.RUN_FAILED, "old", "old", now=timezone.now() - timedelta(days=31))
    recent = raise_notification(Rule.RUN_FAILED, "new", "new")
    run_job("prune_notifications")
    assert list(Notification.objects.values_list("pk", flat=True)) == [recent.pk]
    assert old is not None


@pytest.mark.urls("notifications.tests.urls_crash")
def test_a_server_error_notifies_once_within_the_cooldown(client):
    Channel.objects.create(name="ops", kind="discord", url="http://127.0.0.1:1/x",
                           rules=["server_error"])
    client.raise_request_exception = False
    assert client.get("/crash/").status_code == 500
    assert client.get("/crash/").status_code == 500
    notification = Notification.objects.get(rule="server_error")
    assert notification.title == "Server error: ValueError on GET /crash/"
    assert notification.deliveries.count() == 1


@pytest.mark.urls("notifications.tests.urls_crash")
def test_server_errors_notify_at_a_fixed_total_rate_whatever_the_path(client, settings):
    settings.NOTIFY_SERVER_ERROR_MAX = 3
    Channel.objects.create(name="ops", kind="discord", url="http://127.0.0.1:1/x",
                           rules=["server_error"])
    client.raise_request_exception = False
    for number in range(7):
        assert client.get(f"/crash/{number}/").status_code == 500
    assert Notification.objects.filter(rule="server_error").count() == 3
    Notification.objects.update(created_at=timezone.now() - timedelta(hours=1))
    assert client.get("/crash/later/").status_code == 500  # the window has passed
    assert Notification.objects.filter(rule="server_error").count() == 4


@pytest.mark.urls("notifications.tests.urls_crash")
def test_a_database_error_does_not_try_the_outbox_in_that_database(client):
    client.raise_request_exception = False
    assert client.get("/db-down/").status_code == 500
    assert not Notification.objects.exists()


def test_admin_refuses_non_http_urls_and_never_shows_saved_secrets(admin_client):
    response = admin_client.post("/admin/notifications/channel/add/", {
        "name": "bad", "kind": "discord", "enabled": "on", "url": "ftp://example.com/hook",
        "rules": ["run_failed"],
    })
    assert response.status_code == 200 and "Only http:// and https://" in response.content.decode()
    url = "https://discord.example/api/webhooks/123456/very-secret-token"
    response = admin_client.post("/admin/notifications/channel/add/", {
        "name": "ops", "kind": "webhook", "enabled": "on", "url": url, "secret": "hmac-key-42",
        "rules": ["run_failed", "server_error"],
    })
    assert response.status_code == 302
    saved = Channel.objects.get(name="ops")
    assert saved.rules == ["run_failed", "server_error"]
    change = admin_client.get(f"/admin/notifications/channel/{saved.pk}/change/").content.decode()
    listing = admin_client.get("/admin/notifications/channel/").content.decode()
    for html in (change, listing):
        assert "very-secret-token" not in html and "hmac-key-42" not in html
    assert "https://discord.example/api/we…" in change
    # Saving again with the secret fields left empty keeps them.
    response = admin_client.post(f"/admin/notifications/channel/{saved.pk}/change/", {
        "name": "ops", "kind": "webhook", "enabled": "on", "url": "", "secret": "",
        "rules": ["run_failed"],
    })
    assert response.status_code == 302
    saved.refresh_from_db()
    assert (saved.url, saved.secret, saved.rules) == (url, "hmac-key-42", ["run_failed"])


def test_notifications_page_and_test_button(client, admin_client, django_user_model):
    channel = Channel.objects.create(name="team", kind="slack", url="http://127.0.0.1:1/x",
                                     rules=["run_failed"])
    raise_notification(Rule.RUN_FAILED, "run:9", "Run 9 failed <script>x</script>")
    assert client.get("/notifications/").status_code == 302
    page = admin_client.get("/notifications/").content.decode()
    assert "Run 9 failed &lt;script&gt;" in page and "team: pending" in page
    assert "Send test notification" in page and "requeue_deliveries" in page
    response = admin_client.post(f"/notifications/channels/{channel.pk}/test/")
    assert response.status_code == 302
    assert Notification.objects.filter(rule="test").count() == 1
    viewer = django_user_model.objects.create_user("viewer", password="pw-123456-x")
    client.force_login(viewer)
    assert "Send test notification" not in client.get("/notifications/").content.decode()
    assert client.post(f"/notifications/channels/{channel.pk}/test/").status_code == 302
    assert Notification.objects.filter(rule="test").count() == 1
