from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from notifications.messages import Message


class Rule(models.TextChoices):
    RUN_FAILED = "run_failed", "Test run finished with failed or error tests"
    MACHINE_SILENT = "machine_silent", "Machine silent during a run"
    NEW_FLAKY_TEST = "new_flaky_test", "A test became flaky (passed and failed on one commit, or flips)"
    PROJECT_DEGRADED = "project_degraded", "Tracked project over its error-rate or latency limit"
    SERVER_ERROR = "server_error", "Server error (5xx) inside Monitor"
    DAILY_DIGEST = "daily_digest", "Daily digest"
    TEST = "test", "Test notification"


def validate_http_url(value: str):
    if value and not value.lower().startswith(("http://", "https://")):
        raise ValidationError("Only http:// and https:// addresses can receive notifications.")


class Channel(models.Model):
    """Somewhere notifications go: a Discord or Slack webhook, a signed JSON webhook, e-mail."""

    class Kind(models.TextChoices):
        DISCORD = "discord", "Discord webhook"
        SLACK = "slack", "Slack incoming webhook"
        WEBHOOK = "webhook", "JSON webhook (HMAC-signed)"
        EMAIL = "email", "E-mail"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    url = models.CharField(
        "webhook URL", max_length=1000, blank=True, validators=[validate_http_url],
        help_text="Discord, Slack and JSON webhooks. Kept secret: shown shortened once saved.",
    )
    secret = models.CharField(
        "HMAC key", max_length=200, blank=True,
        help_text="JSON webhooks: requests carry X-Monitor-Signature = sha256=HMAC(key, "
                  "'<X-Monitor-Timestamp>.<body>').",
    )
    email_to = models.CharField(
        "e-mail recipients", max_length=1000, blank=True, help_text="Comma-separated addresses."
    )
    rules = models.JSONField(default=list, help_text="Rules whose notifications come here.")
    machines = models.CharField(
        max_length=1000, blank=True,
        help_text="Only these test machines (comma-separated names); empty means all.",
    )
    projects = models.CharField(
        max_length=1000, blank=True,
        help_text="Only these tracked projects (comma-separated PROJECT_IDs); empty means all.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if self.kind == self.Kind.EMAIL:
            if not self.email_to.strip():
                raise ValidationError({"email_to": "An e-mail channel needs recipients."})
        elif not self.url:
            raise ValidationError({"url": "This kind of channel needs a webhook URL."})
        unknown = set(self.rules) - set(Rule.values)
        if unknown:
            raise ValidationError({"rules": f"Unknown rules: {', '.join(sorted(unknown))}"})

    @staticmethod
    def _names(text):
        return {item.strip().lower() for item in text.split(",") if item.strip()}

    def wants(self, rule: str, machine: str = "", project: str = "") -> bool:
        if not self.enabled or rule not in self.rules:
            return False
        if machine and self.machines and machine.lower() not in self._names(self.machines):
            return False
        if project and self.projects and str(project).lower() not in self._names(self.projects):
            return False
        return True

    @property
    def recipients(self) -> list[str]:
        return sorted(self._names(self.email_to))

    @staticmethod
    def shorten_secret(value: str) -> str:
        if not value:
            return ""
        if value.lower().startswith(("http://", "https://")):
            scheme, _, rest = value.partition("://")
            host, _, path = rest.partition("/")
            return f"{scheme}://{host}/{path[:6]}…" if path else f"{scheme}://{host}"
        return value[:3] + "…"


class Notification(models.Model):
    """The outbox: written in the same transaction as the change that raised it."""

    rule = models.CharField(max_length=32, choices=Rule.choices, db_index=True)
    key = models.CharField(max_length=300, help_text="What it is about; the cooldown is per key.")
    title = models.CharField(max_length=300)
    text = models.TextField(blank=True)
    facts = models.JSONField(default=list, blank=True)
    link = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.title

    def as_message(self) -> Message:
        return Message(
            id=self.pk, rule=self.rule, title=self.title, text=self.text, link=self.link,
            facts=[list(fact) for fact in self.facts], created_at=self.created_at.isoformat(),
        )


class Delivery(models.Model):
    """One notification to one channel, with its attempts."""

    class State(models.TextChoices):  # labels made from the names: "Pending", ...
        PENDING = "pending"
        SENDING = "sending"
        DELIVERED = "delivered"
        FAILED = "failed"

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["notification", "channel"], name="one_delivery_per_channel")
        ]

    def __str__(self):
        return f"{self.notification} → {self.channel} ({self.state})"


class Cooldown(models.Model):
    """When a rule last notified about a key; it stays quiet about that key for a while."""

    rule = models.CharField(max_length=32, choices=Rule.choices)
    key = models.CharField(max_length=300)
    last_raised_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "key"], name="one_cooldown_per_key")]


class Job(models.Model):
    """A scheduled job: its lease (so two runs never overlap) and how its last run went."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped: already running"

    name = models.CharField(max_length=100, unique=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    last_detail = models.TextField(blank=True)
    runs = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def last_duration(self) -> timedelta | None:
        if self.last_started_at and self.last_finished_at:
            return self.last_finished_at - self.last_started_at
        return None
