"""Raising notifications: the one way in for every rule.

raise_notification() writes the notification, one delivery per interested channel and the task
that will send each, inside the caller's transaction: if the change that raised it rolls back,
nothing is sent; once it commits, nothing is lost even if the worker is down.
"""

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from notifications.models import Channel, Cooldown, Delivery, Notification, Rule


def _cooldown_passed(rule: str, key: str, now, cooldown: timedelta) -> bool:
    """True (and the cooldown restarted) when `rule` has not notified about `key` lately."""
    row = Cooldown.objects.select_for_update().filter(rule=rule, key=key).first()
    if row is None:
        try:
            with transaction.atomic():
                Cooldown.objects.create(rule=rule, key=key, last_raised_at=now)
            return True
        except IntegrityError:  # raised at the same moment elsewhere: that one wins
            return False
    if row.last_raised_at > now - cooldown:
        return False
    row.last_raised_at = now
    row.save(update_fields=["last_raised_at"])
    return True


def raise_notification(
    rule: str, key: str, title: str, text: str = "", *, facts=(), link: str = "",
    machine: str = "", project: str = "", cooldown: timedelta | None = None, now=None,
) -> Notification | None:
    """Notify every channel that wants `rule` (for that machine/project), unless the same rule
    notified about the same key within the cooldown. Returns the notification, or None."""
    from notifications.delivery import enqueue_delivery

    now = now or timezone.now()
    if cooldown is None:
        cooldown = timedelta(seconds=settings.NOTIFY_COOLDOWN_SECONDS)
    with transaction.atomic():
        if not _cooldown_passed(rule, key, now, cooldown):
            return None
        notification = Notification.objects.create(
            rule=rule, key=key[:300], title=title[:300], text=text,
            facts=[[str(name), value] for name, value in facts], link=link, created_at=now,
        )
        channels = [
            channel for channel in Channel.objects.filter(enabled=True)
            if channel.wants(rule, machine=machine, project=project)
        ]
        for channel in channels:
            enqueue_delivery(
                Delivery.objects.create(notification=notification, channel=channel, next_attempt_at=now)
            )
    return notification


def send_test_notification(channel: Channel, requested_by: str = "") -> Notification:
    """A notification to one channel only, to check it is set up right (no cooldown)."""
    from notifications.delivery import enqueue_delivery

    with transaction.atomic():
        notification = Notification.objects.create(
            rule=Rule.TEST, key=f"test:{channel.pk}",
            title=f"Test notification for {channel.name}",
            text="If you can read this, Monitor can reach this channel.",
            facts=[["Channel", channel.get_kind_display()]]
            + ([["Requested by", requested_by]] if requested_by else []),
            link=f"{settings.SITE_URL}/notifications/",
        )
        enqueue_delivery(Delivery.objects.create(notification=notification, channel=channel))
    return notification
