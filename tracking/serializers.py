from rest_framework import serializers

from tracking.models import Project, RequestMetric
from tracking.services import REQUEST_SORTING

WINDOWS = {"15m": 15, "1h": 60, "6h": 360, "24h": 1440, "7d": 7 * 1440, "30d": 30 * 1440}


class ProjectSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "token_hint", "created_at", "dropped_by_clients"]


class WindowQuerySerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="Start (ISO 8601, inclusive).")
    until = serializers.DateTimeField(required=False, help_text="End (ISO 8601, exclusive); "
                                      "default now.")
    last = serializers.ChoiceField(choices=list(WINDOWS), required=False,
                                   help_text="Shortcut for since = until - last.")

    def validate(self, data):
        if "last" in data and "since" in data:
            raise serializers.ValidationError({"last": ["Give either last or since, not both."]})
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise serializers.ValidationError({"until": ["Must be after since."]})
        return data


class RequestFilterSerializer(WindowQuerySerializer):
    path = serializers.CharField(required=False, help_text="Path prefix, e.g. /api/.")
    status = serializers.RegexField(r"^([1-5]xx|[1-5]\d\d)$", required=False,
                                    help_text="A code (404) or a class (5xx).")
    view = serializers.CharField(required=False, allow_blank=True, help_text="Exact view name.")
    method = serializers.CharField(required=False, max_length=16)
    min_duration_ms = serializers.FloatField(required=False, min_value=0)
    trace_id = serializers.RegexField(r"^[0-9a-fA-F]{32}$", required=False,
                                      help_text="The requests of one trace (W3C trace id, 32 "
                                                "hex digits).")
    sort = serializers.ChoiceField(
        required=False,
        choices=[prefix + column for column in REQUEST_SORTING.columns for prefix in ("", "-")],
        help_text="Order of the list: a column, or -column for the reverse; default -time "
                  "(newest first). Equal values keep the order of their ids.")


class RequestMetricSerializer(serializers.ModelSerializer):
    trace_url = serializers.SerializerMethodField(
        help_text="The page of the request's trace, when that trace was sent to this server "
                  "(OTLP, Zipkin); null otherwise.")

    class Meta:
        model = RequestMetric
        fields = ["id", "received_at", "duration_ms", "method", "path", "query", "view_name",
                  "status_code", "session_id", "user_agent", "client_ip", "response_size",
                  "headers", "trace_id", "span_id", "trace_url"]
        extra_kwargs = {
            "trace_id": {"help_text": "The W3C trace id the request was served in, if any."},
            "span_id": {"help_text": "Its server span's id, when the tracker saw the app's "
                                     "OpenTelemetry span or the row came from one."},
        }

    def get_trace_url(self, row) -> str | None:
        # The page's traces, found in one query by the view (trace_urls in the context).
        url = self.context.get("trace_urls", {}).get(row.trace_id)
        request = self.context.get("request")
        return request.build_absolute_uri(url) if url and request is not None else url


class StatsSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    client_errors = serializers.IntegerField(help_text="Responses with a 4xx status.")
    server_errors = serializers.IntegerField(help_text="Responses with a 5xx status.")
    error_rate = serializers.FloatField(help_text="server_errors / count (0 when no requests).")
    client_error_rate = serializers.FloatField(help_text="client_errors / count.")
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)


class ViewStatsSerializer(StatsSerializer):
    view_name = serializers.CharField()
    mean_ms = serializers.FloatField(allow_null=True)


class SeriesPointSerializer(StatsSerializer):
    start = serializers.DateTimeField()


class SeriesSerializer(serializers.Serializer):
    step_seconds = serializers.IntegerField()
    points = SeriesPointSerializer(many=True)


class SummarySerializer(StatsSerializer):
    project = serializers.UUIDField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    mean_ms = serializers.FloatField(allow_null=True)
    requests_per_minute = serializers.FloatField()
    views = ViewStatsSerializer(many=True)
    series = SeriesSerializer()


class BatchEventSerializer(serializers.Serializer):
    """Schema only: the endpoint validates events itself (tracking.wire), one by one."""

    time = serializers.FloatField(help_text="Unix time (seconds) the app received the request.")
    duration_ms = serializers.FloatField()
    path = serializers.CharField()
    query = serializers.CharField(required=False)
    status = serializers.IntegerField(min_value=100, max_value=599)
    method = serializers.CharField(required=False)
    view = serializers.CharField(required=False)
    session_id = serializers.CharField(required=False)
    user_agent = serializers.CharField(required=False)
    client_ip = serializers.IPAddressField(required=False)
    response_size = serializers.IntegerField(required=False, min_value=0)
    headers = serializers.DictField(child=serializers.CharField(), required=False,
                                    help_text="Credential headers are dropped on arrival.")
    trace_id = serializers.CharField(required=False, help_text="The W3C trace id the request "
                                     "was served in: 32 hex digits, not all zero.")
    span_id = serializers.CharField(required=False, help_text="Its server span's id (16 hex "
                                    "digits, not all zero; only with trace_id): a request sent "
                                    "again with the same trace and span id, by a tracker or as "
                                    "an OpenTelemetry SERVER span, is stored and counted once.")


class BatchSerializer(serializers.Serializer):
    project_id = serializers.UUIDField(required=False, help_text="Checked against the token's "
                                       "project when given.")
    events = BatchEventSerializer(many=True)
    dropped = serializers.IntegerField(required=False, min_value=0, help_text="Events the "
                                       "tracker dropped since its last batch.")
    tracker = serializers.CharField(required=False)


class RejectedEventSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    field = serializers.CharField()
    message = serializers.CharField()


class BatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    rejected_events = RejectedEventSerializer(many=True)


class LegacyTrackerEventSerializer(serializers.Serializer):
    """Schema only: the legacy tracker's body (docs/protocols.md)."""

    project_token = serializers.CharField()
    event_type = serializers.ChoiceField(choices=["page_view"])
    ra_tracker_version = serializers.CharField(required=False)
    event_data = serializers.DictField()
