"""Traces as rows: a Trace, its Spans and its Events.

Timestamps are stored as NUMERIC(26, 6) in the client's own unit (the protocol's example clients
send Unix seconds; milliseconds or nanoseconds fit too), so sub-second floats keep their digits.
`Trace.integer_timestamps` remembers whether the client sent only integers, so the tree comes
back with integers exactly where the client used them (a trace with any float comes back in
floats).
"""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from traces.assembly import COMPLETE, INCONSISTENT, OPEN, EventRecord, SpanRecord, TraceBounds


class TimestampField(models.Field):
    """A timestamp in the client's unit: NUMERIC(26, 6) on PostgreSQL (exact), a NUMERIC-affinity
    column on SQLite (integers exact to 2**63, fractions to ~16 significant digits).

    Not a DecimalField: Django reads SQLite decimals through a 15-digit context, which would cut
    the microseconds off Unix seconds."""

    description = "Timestamp in the client's unit"

    def db_type(self, connection):
        return "numeric(26, 6)" if connection.vendor == "postgresql" else "decimal"

    def from_db_value(self, value, expression, connection):
        if value is None or isinstance(value, Decimal):
            return value
        return Decimal(value) if isinstance(value, int) else Decimal(repr(float(value)))

    def to_python(self, value):
        if value is None or isinstance(value, Decimal):
            return value
        return Decimal(value) if isinstance(value, int) else Decimal(str(value))

    def get_prep_value(self, value):
        return self.to_python(super().get_prep_value(value))


class Trace(models.Model):
    STATUSES = [(OPEN, "open"), (COMPLETE, "complete"), (INCONSISTENT, "inconsistent")]

    # Chosen by the client in /ws/trace/<id>, as the trace websocket protocol has it.
    id = models.BigIntegerField(primary_key=True)
    status = models.CharField(max_length=12, choices=STATUSES, default=OPEN)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)
    completed = models.DateTimeField(null=True, blank=True)

    start = TimestampField(null=True, blank=True, db_index=True)
    end = TimestampField(null=True, blank=True)
    duration = TimestampField(null=True, blank=True, db_index=True)
    group_id = models.CharField(max_length=255, blank=True)  # TRACE_START's
    end_group_id = models.CharField(max_length=255, blank=True)  # TRACE_END's
    integer_timestamps = models.BooleanField(default=True)

    name = models.CharField(max_length=255, blank=True)  # the root span's
    # Where the span named so far starts, while the trace is open: a frame brings a span that
    # starts earlier (the root's SPAN_START after its children's), and the name follows it.
    root_start = TimestampField(null=True, blank=True)
    service = models.CharField(max_length=255, blank=True)
    span_count = models.PositiveIntegerField(default=0)
    event_count = models.PositiveIntegerField(default=0)
    unfinished_span_count = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True)  # why it is inconsistent
    # Clients that ask for acknowledgements (?ack=1) number their frames: the highest stored.
    last_seq = models.BigIntegerField(default=0)
    # OpenTelemetry's 128-bit trace id as 32 lowercase hex digits: traces that came over OTLP or
    # Zipkin are addressed by it (their integer id is derived from it, traces.otel.row_id);
    # traces of the trace websocket protocol have none. Unique (Meta.constraints), so indexed.
    trace_id = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001 (unique: NULLs, not "")
    # Spans whose status is error (a database default: the raw ingest statements omit it).
    error_count = models.PositiveIntegerField(default=0, db_default=0)
    # OTLP and Zipkin traces: the project whose token sent the trace's first spans, by its
    # public id (tracking's Project.public_id, the id its API and create_project show; the
    # domain apps share no foreign key); null for traces of the trace websocket protocol.
    project = models.UUIDField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]
        # Indexes and the unique constraint of the text columns declared here, not with
        # db_index/unique on the fields: on PostgreSQL those add a second, varchar_pattern_ops
        # index to each (for LIKE 'x%'), which no query here makes and every new trace paid
        # for. The names are the ones the fields' own indexes had (migration 0009).
        indexes = [models.Index(fields=["status"], name="traces_trace_status_f833142a"),
                   models.Index(fields=["name"], name="traces_trace_name_0af1d72e"),
                   models.Index(fields=["service"], name="traces_trace_service_a52667bd")]
        constraints = [models.UniqueConstraint(fields=["trace_id"],
                                               name="traces_trace_trace_id_key")]

    def __str__(self):
        return f"trace {self.id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == OPEN

    @property
    def ref(self) -> int | str:
        """What addresses the trace in URLs: its 32-hex trace id (OTLP, Zipkin), else its id."""
        return self.trace_id or self.id

    @property
    def current_status(self) -> str:
        """The status now: an OTLP or Zipkin trace, which has no end message, is complete once
        its root span has arrived and no span came for TRACE_OTLP_QUIET_SECONDS (its row says
        open until the complete_quiet_traces job marks it; traces.span_ingest.now_complete()
        finds such rows)."""
        if (self.trace_id and self.status == OPEN and self.root_start is not None
                and self.updated <= timezone.now() - timedelta(
                    seconds=settings.TRACE_OTLP_QUIET_SECONDS)):
            return COMPLETE
        return self.status

    @property
    def current_completed(self):
        """When the trace was decided: for an OTLP or Zipkin trace complete on read but not yet
        marked so, when its quiet period ended."""
        if self.completed is None and self.current_status == COMPLETE:
            return self.updated + timedelta(seconds=settings.TRACE_OTLP_QUIET_SECONDS)
        return self.completed

    def as_number(self, value: Decimal | None):
        """A stored timestamp in the unit the client used."""
        if value is None:
            return None
        return int(value) if self.integer_timestamps else float(value)

    def bounds(self) -> TraceBounds:
        return TraceBounds(
            start=self.as_number(self.start), start_group_id=self.group_id or None,
            end=self.as_number(self.end), end_group_id=self.end_group_id or None,
            service=self.service, unfinished_spans=self.unfinished_span_count,
        )

    def span_records(self) -> list[SpanRecord]:
        rows = self.spans.values_list("group_id", "name", "start", "end", "service", "attributes",
                                      "status_code", "status_message")
        return [
            SpanRecord(group_id, name or None, self.as_number(start), self.as_number(end), service,
                       *rest)
            for group_id, name, start, end, service, *rest in rows
        ]

    def event_records(self) -> list[EventRecord]:
        rows = self.events.values_list("name", "timestamp", "attributes")
        return [EventRecord(name, self.as_number(timestamp), attributes)
                for name, timestamp, attributes in rows]


class Span(models.Model):
    """A span. Of the trace websocket protocol: group_id names it, start/end in the client's unit.
    Of OTLP or Zipkin: as OpenTelemetry models it, start/end in nanoseconds since 1970 (exact
    in NUMERIC(26, 6)), group_id = span_id.

    The columns added for OpenTelemetry have database defaults (or are nullable: NULL attributes
    read as none), so that a writer naming only the older columns stays valid."""

    UNSET, OK, ERROR = 0, 1, 2  # OTLP's Status.StatusCode
    STATUS_CODES = [(UNSET, "unset"), (OK, "ok"), (ERROR, "error")]
    # OTLP's Span.SpanKind
    KINDS = [(0, "unspecified"), (1, "internal"), (2, "server"), (3, "client"), (4, "producer"),
             (5, "consumer")]

    # No foreign key constraint in the database: on PostgreSQL spans are partitioned by time, and
    # deleting old traces would have PostgreSQL look for their spans in every partition, one
    # trace at a time; and its deferred check per span stored cost about a third of PostgreSQL's
    # time per span (bench/otlp_ingest.py). Every writer makes or locks the trace's row in the
    # transaction that inserts its spans; retention removes a trace's spans with it
    # (traces/jobs.py: they share their time, `received`); Django's delete() cascades as before.
    # No index of its own either: the unique (trace, group_id) index serves every look-up by
    # trace.
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="spans",
                              db_constraint=False, db_index=False)
    group_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)  # empty until SPAN_START arrives
    service = models.CharField(max_length=255, blank=True)
    start = TimestampField(null=True, blank=True)
    end = TimestampField(null=True, blank=True)
    span_id = models.CharField(max_length=16, blank=True, default="", db_default="")
    parent_span_id = models.CharField(max_length=16, blank=True, default="", db_default="")
    kind = models.PositiveSmallIntegerField(choices=KINDS, default=0, db_default=0)
    status_code = models.PositiveSmallIntegerField(choices=STATUS_CODES, default=UNSET,
                                                   db_default=UNSET)
    status_message = models.TextField(blank=True, default="", db_default="")
    attributes = models.JSONField(null=True, blank=True)  # {key: value}
    resource = models.JSONField(null=True, blank=True)  # the resource's attributes
    events = models.JSONField(null=True, blank=True)  # [{name, time, attributes?}], time in ns
    links = models.JSONField(null=True, blank=True)  # [{trace_id, span_id, attributes?}]
    # When the span's trace was first stored (its `created`; every writer on PostgreSQL sets it
    # so): on PostgreSQL spans are partitioned by it (plumbing/partitions.py), so the spans of a
    # trace sit in one partition and leave with their trace. There the unique constraint below
    # and the primary key include it (the database wants the partition key in them); Django
    # addresses spans by id as before.
    received = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trace", "group_id"], name="traces_span_unique_group")
        ]
        indexes = [models.Index(fields=["name"], name="traces_span_name")]

    def __str__(self):
        return self.name or self.group_id


class Service(models.Model):
    """A service that stored spans name: the trace list's service picker. Written by every span
    writer with the spans that name it (traces/service_names.py), so that listing the services
    is not a scan of every span. The daily forget_unused_services job (traces/jobs.py) forgets
    the names whose spans and traces retention removed."""

    name = models.CharField(max_length=255, primary_key=True)

    def __str__(self):
        return self.name


class Event(models.Model):
    # No foreign key constraint in the database either, as for spans: PostgreSQL would check each
    # deleted trace for events, one at a time, which made most of the cost of retention (0.7 s
    # per 100,000 traces). Events are written with their trace and deleted with it.
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="events",
                              db_constraint=False)
    name = models.CharField(max_length=255)
    timestamp = TimestampField()
    attributes = models.JSONField(null=True, blank=True)  # e.g. an exception's type and message

    def __str__(self):
        return self.name
