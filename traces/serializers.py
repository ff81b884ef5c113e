from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from traces import services
from traces.models import Trace


class TraceSummarySerializer(serializers.ModelSerializer):
    """A trace in lists: everything but the tree. Timestamps in the client's unit."""

    start = serializers.SerializerMethodField()
    end = serializers.SerializerMethodField()
    duration = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    # An OTLP trace turns complete after its quiet period, before its row says so.
    status = serializers.ChoiceField(choices=Trace.STATUSES, source="current_status",
                                     read_only=True)
    completed = serializers.DateTimeField(source="current_completed", read_only=True,
                                          allow_null=True)

    class Meta:
        model = Trace
        fields = ["id", "trace_id", "project", "created", "completed", "status", "name", "service", "start",
                  "end", "duration", "span_count", "event_count", "error_count", "url"]

    @extend_schema_field(serializers.FloatField(allow_null=True))  # null while the trace is open
    def get_start(self, trace):
        return trace.as_number(trace.start)

    @extend_schema_field(serializers.FloatField(allow_null=True))  # null while the trace is open
    def get_end(self, trace):
        return trace.as_number(trace.end)

    @extend_schema_field(serializers.FloatField(allow_null=True))  # null while the trace is open
    def get_duration(self, trace):
        return trace.as_number(trace.duration)

    @extend_schema_field(OpenApiTypes.STR)
    def get_url(self, trace):
        return f"/api/trace/{trace.trace_id or trace.id}/"


class TraceSerializer(TraceSummarySerializer):
    """The trace websocket protocol's body {id, created, trace} with `trace` as a JSON object (the
    trace demo server sent a JSON string), plus the status, what an open trace still misses and why
    one is inconsistent."""

    trace = serializers.SerializerMethodField(
        help_text="The span tree: {start, end, type: TRACE, children: [...]}. Spans are "
                  "{name, start, end, type: SPAN, children?}, events {name, timestamp, type: "
                  "EVENT}. While the trace is open it is a preview: spans missing a half carry "
                  "open: true."
    )
    missing = serializers.SerializerMethodField()

    class Meta(TraceSummarySerializer.Meta):
        fields = [*TraceSummarySerializer.Meta.fields, "problems", "missing", "trace"]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_trace(self, trace):
        return services.trace_tree(trace).tree

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_missing(self, trace):
        return services.missing_parts(trace)
