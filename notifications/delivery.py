"""Sending deliveries, in the worker (`manage.py db_worker`), through django-tasks.

A delivery is claimed (state `sending` with a lease) before the request and settled after it, in
short transactions: no database lock is held while a receiver takes its time. A worker that dies
mid-send leaves an expired lease, which the `requeue_deliveries` job puts back.
"""

import logging
from datetime import timedelta

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django_tasks import task

from notifications import messages
from notifications.models import Channel, Delivery

logger = logging.getLogger(__name__)

MAX_ERROR_TEXT = 2000
RESPONSE_BYTES_READ = 1024


@task()
def deliver(delivery_id: int) -> str:
    return attempt_delivery(delivery_id)


def enqueue_delivery(delivery: Delivery) -> None:
    """Queue the delivery's next attempt, in the caller's transaction (the task is a row too)."""
    run_after = delivery.next_attempt_at
    if run_after and run_after > timezone.now():
        deliver.using(run_after=run_after).enqueue(delivery.pk)
    else:
        deliver.enqueue(delivery.pk)


class Outcome:
    def __init__(self, ok, status_code=None, error="", retry_after=None):
        self.ok, self.status_code, self.error, self.retry_after = ok, status_code, error, retry_after


def attempt_delivery(delivery_id: int, now=None) -> str:
    now = now or timezone.now()
    lease = timedelta(seconds=settings.NOTIFY_TIMEOUT_SECONDS * 3 + 30)
    claimed = Delivery.objects.filter(
        pk=delivery_id, state=Delivery.State.PENDING, next_attempt_at__lte=now
    ).update(state=Delivery.State.SENDING, claimed_until=now + lease)
    if not claimed:
        return "not due"
    delivery = Delivery.objects.select_related("channel", "notification").get(pk=delivery_id)
    try:
        outcome = send(delivery.channel, delivery.notification.as_message())
    except Exception as error:  # a bug in one sender must not lose the delivery
        logger.exception("delivery %s raised", delivery_id)
        outcome = Outcome(False, error=f"{type(error).__name__}: {error}")
    return settle(delivery, outcome)


def settle(delivery: Delivery, outcome: Outcome) -> str:
    now = timezone.now()
    with transaction.atomic():
        delivery.attempts += 1
        delivery.claimed_until = None
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error[:MAX_ERROR_TEXT]
        if outcome.ok:
            delivery.state = Delivery.State.DELIVERED
            delivery.delivered_at = now
        elif (
            messages.is_retryable(outcome.status_code)
            and delivery.attempts < settings.NOTIFY_MAX_ATTEMPTS
        ):
            delivery.state = Delivery.State.PENDING
            delay = messages.retry_delay(
                delivery.attempts, settings.NOTIFY_RETRY_BASE_SECONDS,
                settings.NOTIFY_RETRY_MAX_SECONDS, outcome.retry_after,
            )
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            enqueue_delivery(delivery)
        else:
            delivery.state = Delivery.State.FAILED
        delivery.save()
    return delivery.state


def send(channel: Channel, message: messages.Message) -> Outcome:
    if channel.kind == Channel.Kind.EMAIL:
        send_mail(message.title, messages.email_text(message), None, channel.recipients)
        return Outcome(True)
    headers = {"Content-Type": "application/json", "User-Agent": "Monitor-Notifications/1"}
    if channel.kind == Channel.Kind.DISCORD:
        body = messages.discord_body(message)
    elif channel.kind == Channel.Kind.SLACK:
        body = messages.slack_body(message)
    else:
        body = messages.webhook_body(message)
    raw = messages.encode(body)
    if channel.kind == Channel.Kind.WEBHOOK:
        timestamp = str(int(timezone.now().timestamp()))
        headers[messages.TIMESTAMP_HEADER] = timestamp
        headers["X-Monitor-Delivery"] = str(message.id)
        if channel.secret:
            headers[messages.SIGNATURE_HEADER] = messages.signature(channel.secret, timestamp, raw)
    return post(channel.url, raw, headers)


def post(url: str, raw: bytes, headers: dict) -> Outcome:
    timeout = settings.NOTIFY_TIMEOUT_SECONDS
    try:
        # stream=True and a bounded read: a receiver that trickles an endless body cannot hold
        # the worker; (connect, read) timeouts bound the wait for each step.
        with requests.post(url, data=raw, headers=headers, timeout=(min(timeout, 5), timeout),
                           stream=True, allow_redirects=False) as response:
            excerpt = response.raw.read(RESPONSE_BYTES_READ, decode_content=True) or b""
            status = response.status_code
            retry_after = _seconds(response.headers.get("Retry-After"))
    except requests.RequestException as error:
        return Outcome(False, error=f"{type(error).__name__}: {error}")
    if 200 <= status < 300:
        return Outcome(True, status)
    text = excerpt.decode("utf-8", "replace").strip()
    return Outcome(False, status, f"HTTP {status}: {text}"[:MAX_ERROR_TEXT], retry_after)


def _seconds(value):
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
