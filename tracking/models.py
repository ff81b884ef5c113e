import uuid

from django.db import models
from django.utils import timezone

from plumbing.tokens import new_token, token_digest, token_hint, token_matches

TOKEN_PREFIX = "rat_"


class Project(models.Model):
    """A tracked application: its requests arrive with the project's secret token."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False,
                                 help_text="PROJECT_ID in the tracked app's RIGID_ANALYTICS.")
    name = models.CharField(max_length=200)
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    token_hint = models.CharField(max_length=16, editable=False, blank=True)
    token_rotated_at = models.DateTimeField(default=timezone.now, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    dropped_by_clients = models.BigIntegerField(
        default=0, editable=False,
        help_text="Events the trackers reported dropping (queue full, backend unreachable).",
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self):
        return self.name

    def issue_token(self) -> str:
        """Give the project a new token (the old one stops working once saved); returns it:
        it is shown once and only its digest is stored."""
        token = new_token(TOKEN_PREFIX)
        self.token_digest = token_digest(token)
        self.token_hint = token_hint(token)
        self.token_rotated_at = timezone.now()
        return token

    def token_matches(self, token: str) -> bool:
        return bool(self.token_digest) and token_matches(token, self.token_digest)

    @classmethod
    def create_with_token(cls, name: str) -> tuple["Project", str]:
        project = cls(name=name)
        token = project.issue_token()
        project.save()
        return project, token


class RequestMetric(models.Model):
    """One request served by a tracked application (raw row, kept for the retention period)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="requests",
                                db_index=False)
    received_at = models.DateTimeField(help_text="When the tracked app received the request.")
    duration_ms = models.FloatField()
    method = models.CharField(max_length=16, blank=True, help_text="Empty when the client "
                              "does not send it (the legacy tracker does not).")
    path = models.TextField()
    query = models.TextField(blank=True)
    view_name = models.CharField(max_length=200, blank=True)
    status_code = models.PositiveSmallIntegerField()
    session_id = models.CharField(max_length=64, blank=True)
    user_agent = models.TextField(blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    response_size = models.BigIntegerField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True,
                               help_text="Request headers without credentials (scrubbed).")
    # The W3C trace context the request was served in (32 and 16 lowercase hex digits), when
    # the tracker saw one (an incoming traceparent, or the app's OpenTelemetry span) or the row
    # came from an OpenTelemetry SERVER span; NULL otherwise. span_id is the server span's own
    # id: a request reported by the tracker and by OpenTelemetry is stored once (RequestSpan
    # below; tracking.services.ingest_events skips the second).
    trace_id = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001 - NULL: none
    span_id = models.CharField(max_length=16, null=True, blank=True)  # noqa: DJ001 - NULL: none

    class Meta:
        indexes = [
            models.Index(fields=["project", "-received_at"], name="tracking_req_proj_time"),
            # Partial: most rows have no trace id, and a lookup by one implies NOT NULL.
            models.Index(fields=["trace_id"], name="tracking_req_trace",
                         condition=models.Q(trace_id__isnull=False)),
        ]
        ordering = ["-received_at", "-id"]

    def __str__(self):
        return f"{self.method or '?'} {self.path} {self.status_code}"


class RequestSpan(models.Model):
    """The requests stored with a span id, one row per (project, trace id, span id): what makes
    a request reported by both the tracker and OpenTelemetry count once, whichever comes first.

    Not a unique constraint on RequestMetric: on PostgreSQL that table is partitioned by
    received_at, and a partitioned table's unique constraints must hold the partition key, while
    the two reports of one request are received at different times. Pruned with the raw rows."""

    # No index of its own: the unique constraint's index leads with it (one entry fewer to write
    # per request, as tm_api's Test.machine).
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+",
                                db_index=False)
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "trace_id", "span_id"],
                                    name="tracking_request_span_once"),
        ]


class RollupCounts(models.Model):
    """What one rollup cell holds (tracking.aggregation.Cell): counts and a latency histogram."""

    count = models.BigIntegerField(default=0)
    client_errors = models.BigIntegerField(default=0)
    server_errors = models.BigIntegerField(default=0)
    duration_sum_ms = models.FloatField(default=0)
    histogram = models.JSONField(default=dict)

    class Meta:
        abstract = True


class RequestRollup(RollupCounts):
    """Counts and a latency histogram (tracking.aggregation) of one project's requests to one view
    in one minute, hour or (UTC) day. Summaries read these, never the raw rows."""

    MINUTE = 60
    HOUR = 3600
    DAY = 86400

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rollups",
                                db_index=False)
    period_seconds = models.PositiveIntegerField(
        choices=[(MINUTE, "minute"), (HOUR, "hour"), (DAY, "day")])
    period_start = models.DateTimeField()
    view_name = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "period_seconds", "period_start", "view_name"],
                name="tracking_rollup_cell",
            )
        ]

    def __str__(self):
        return f"{self.project_id} {self.period_start:%Y-%m-%d %H:%M} {self.view_name}"


class RequestSeriesRollup(RollupCounts):
    """The same counts and histogram over all of a project's views in one minute or hour: a
    dashboard's time series reads one row per point instead of one per point and view."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="series_rollups",
                                db_index=False)
    period_seconds = models.PositiveIntegerField(
        choices=[(RequestRollup.MINUTE, "minute"), (RequestRollup.HOUR, "hour")])
    period_start = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "period_seconds", "period_start"],
                                    name="tracking_series_cell")
        ]

    def __str__(self):
        return f"{self.project_id} {self.period_start:%Y-%m-%d %H:%M} (all views)"
