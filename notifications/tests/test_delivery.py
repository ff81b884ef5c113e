"""Outbox and worker: written with the change, delivered by the real worker, retried, settled."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from notifications import messages
from notifications.models import Channel, Delivery, Notification, Rule
from notifications.services import raise_notification, send_test_notification

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def channel(kind, url="", **extra):
    return Channel.objects.create(
        name=f"{kind}-{Channel.objects.count()}", kind=kind, url=url,
        rules=[Rule.RUN_FAILED, Rule.SERVER_ERROR], **extra,
    )


def notify(key="run:1", **extra):
    return raise_notification(
        Rule.RUN_FAILED, key=key, title="Run finished: 1 failed", text="details",
        facts=[["Failed", 1]], link="http://monitor.example/run/1", **extra,
    )


def test_outbox_rows_are_written_in_the_callers_transaction(receiver):
    channel(Channel.Kind.DISCORD, receiver.url)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            notify()
            raise RuntimeError("the change that raised it failed")
    assert not Notification.objects.exists()
    assert not Delivery.objects.exists() and not DBTaskResult.objects.exists()
    with transaction.atomic():
        notify()
    assert Delivery.objects.get().state == Delivery.State.PENDING
    assert DBTaskResult.objects.count() == 1


def test_cooldown_per_rule_and_key():
    assert notify("run:1") is not None
    assert notify("run:1") is None
    assert notify("run:2") is not None
    assert notify("run:1", cooldown=timedelta(0)) is not None
    assert Notification.objects.count() == 3


def test_each_channel_kind_delivers_to_a_local_receiver(receiver, run_worker, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    discord = channel(Channel.Kind.DISCORD, receiver.url + "/discord")
    channel(Channel.Kind.SLACK, receiver.url + "/slack")
    channel(Channel.Kind.WEBHOOK, receiver.url + "/webhook", secret="s3cret-key")
    channel(Channel.Kind.EMAIL, email_to="qa@example.com, lead@example.com")
    notification = notify()
    run_worker()
    assert set(Delivery.objects.values_list("state", flat=True)) == {"delivered"}
    by_path = {request["path"]: request for request in receiver.requests}
    assert set(by_path) == {"/hook/discord", "/hook/slack", "/hook/webhook"}
    assert by_path["/hook/discord"]["json"]["username"] == "Monitor"
    assert by_path["/hook/discord"]["json"]["embeds"][0]["title"] == "Run finished: 1 failed"
    assert "Run finished" in by_path["/hook/slack"]["json"]["text"]
    webhook = by_path["/hook/webhook"]
    assert webhook["json"]["id"] == notification.pk
    assert messages.verify_signature(
        "s3cret-key", webhook["headers"]["X-Monitor-Timestamp"], webhook["raw"],
        webhook["headers"]["X-Monitor-Signature"],
    )
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["lead@example.com", "qa@example.com"]
    assert mail.outbox[0].subject == "Run finished: 1 failed"
    assert Delivery.objects.get(channel=discord).attempts == 1


def delivery_to(receiver, run_worker, kind, script) -> Delivery:
    """The delivery of one notification to a channel whose receiver answers `script`, once the
    worker is done with it."""
    receiver.script = script
    channel(kind, receiver.url)
    notify()
    run_worker()
    return Delivery.objects.get()


def test_a_receiver_failing_n_times_is_retried_until_delivered(receiver, run_worker, fast_retries):
    delivery = delivery_to(receiver, run_worker, Channel.Kind.DISCORD,
                           [(500, 0), (503, 0), (429, 0, {"Retry-After": "0"})])
    assert delivery.state == Delivery.State.DELIVERED
    assert delivery.attempts == 4 and len(receiver.requests) == 4


def test_a_receiver_that_keeps_failing_ends_failed_with_the_last_error(receiver, run_worker,
                                                                      fast_retries):
    delivery = delivery_to(receiver, run_worker, Channel.Kind.SLACK, [(502, 0)] * 10)
    assert delivery.state == Delivery.State.FAILED
    assert delivery.attempts == 4 and len(receiver.requests) == 4
    assert delivery.last_status_code == 502 and delivery.last_error.startswith("HTTP 502")


def test_a_4xx_answer_is_not_retried(receiver, run_worker, fast_retries):
    receiver.script = [(404, 0)]
    channel(Channel.Kind.DISCORD, receiver.url)
    notify()
    run_worker()
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts, len(receiver.requests)) == ("failed", 1, 1)


def test_a_slow_receiver_does_not_hold_the_worker_beyond_the_timeout(receiver, run_worker,
                                                                     fast_retries, settings):
    import time

    settings.NOTIFY_TIMEOUT_SECONDS = 0.3
    receiver.script = [(204, 2)]
    channel(Channel.Kind.DISCORD, receiver.url)
    notify()
    started = time.monotonic()
    run_worker()
    delivery = Delivery.objects.get()
    assert delivery.state == Delivery.State.DELIVERED and delivery.attempts == 2
    assert time.monotonic() - started < 2  # the 2 s answer was abandoned, not waited for


def test_an_unreachable_receiver_is_retried_then_failed(run_worker, fast_retries):
    channel(Channel.Kind.WEBHOOK, "http://127.0.0.1:1/hook")
    notify()
    run_worker()
    delivery = Delivery.objects.get()
    assert delivery.state == Delivery.State.FAILED and delivery.attempts == 4
    assert "ConnectionError" in delivery.last_error


def test_nothing_is_lost_while_the_worker_is_stopped(receiver, run_worker):
    channel(Channel.Kind.DISCORD, receiver.url)
    for number in range(5):
        notify(f"run:{number}")
    assert receiver.requests == []  # no worker yet
    run_worker()
    assert len(receiver.requests) == 5
    assert Delivery.objects.filter(state="delivered").count() == 5


def test_test_notification_goes_to_one_channel_without_cooldown(receiver, run_worker):
    first = channel(Channel.Kind.DISCORD, receiver.url + "/a")
    channel(Channel.Kind.DISCORD, receiver.url + "/b")
    send_test_notification(first, requested_by="ada")
    send_test_notification(first, requested_by="ada")
    run_worker()
    assert [request["path"] for request in receiver.requests] == ["/hook/a", "/hook/a"]


def test_disabled_channels_and_other_rules_get_nothing(receiver):
    channel(Channel.Kind.DISCORD, receiver.url, enabled=False)
    Channel.objects.create(name="digest only", kind="slack", url=receiver.url, rules=["daily_digest"])
    notify()
    assert not Delivery.objects.exists()


def test_machine_and_project_scopes():
    scoped = Channel(name="x", kind="slack", url="http://x", rules=["run_failed"],
                     machines="Machine #1, lab-2")
    assert scoped.wants("run_failed", machine="machine #1")
    assert not scoped.wants("run_failed", machine="machine #9")
    assert scoped.wants("run_failed")
    assert not scoped.wants("machine_silent", machine="lab-2")
