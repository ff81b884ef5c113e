"""The one way trace messages get in, whatever the wire format: `ingest_frame` / `ingest_messages`.

Each frame is one transaction on a locked trace row: validate, fold into the stored trace, write
the new rows in bulk, assemble once the trace is ready, and publish a live frame after commit.
A refused frame stores nothing; an accepted one is durable before the client gets any reply.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from trace_project.live import publish_after_commit
from traces import assembly
from traces.assembly import COMPLETE, INCONSISTENT, OPEN, Conflict
from traces.messages import SPAN_END, SPAN_START, FrameError, Message, parse_frame
from traces.models import Event, Span, Trace

STORED_REPLY = "Trace stored. Closing the connection"  # seed 000's text; seed clients match it


class IngestError(Exception):
    """Input the trace cannot take; the text is meant for the client."""


@dataclass
class IngestResult:
    trace_id: int
    status: str  # OPEN, COMPLETE or INCONSISTENT after this frame
    stored: int  # messages written by this frame
    repeats: int  # exact repeats of stored messages, ignored
    problems: list[str]

    @property
    def finished(self) -> bool:
        return self.status != OPEN


def trace_group(trace_id: int) -> str:
    """Channel-layer group of one trace's live page."""
    return f"traces.trace.{trace_id}"


def ingest_frame(trace_id: int, data: str | bytes) -> IngestResult:
    """One websocket frame of seed 000 messages (JSON text)."""
    try:
        messages = parse_frame(
            data, settings.TRACE_MAX_FRAME_BYTES, settings.TRACE_MAX_FRAME_MESSAGES
        )
    except FrameError as error:
        raise IngestError(str(error)) from None
    return ingest_messages(trace_id, messages)


def ingest_messages(trace_id: int, messages: list[Message]) -> IngestResult:
    """Store validated messages of trace `trace_id`; IngestError (nothing stored) otherwise."""
    try:
        with transaction.atomic():
            return _ingest_locked(trace_id, messages)
    except IntegrityError:
        # Only reachable if the row lock were bypassed; the unique (trace, group_id) constraint
        # still keeps the trace whole.
        raise IngestError(
            f"trace {trace_id} was changed by another connection at the same time; "
            "nothing from this frame was stored, send it again"
        ) from None


def _ingest_locked(trace_id: int, messages: list[Message]) -> IngestResult:
    trace = _lock_trace(trace_id)
    if not trace.is_open:
        raise IngestError(
            f"trace {trace_id} is already stored ({trace.status}); send a new trace under a new id"
        )
    if any(isinstance(m.timestamp, float) for m in messages) and trace.integer_timestamps:
        trace.integer_timestamps = False

    group_ids = {m.group_id for m in messages if m.type in (SPAN_START, SPAN_END)}
    known_rows = {}
    if group_ids:
        known_rows = {
            span.group_id: span
            for span in Span.objects.filter(trace_id=trace_id, group_id__in=group_ids)
        }
    known = {
        group_id: assembly.SpanRecord(group_id, row.name or None, trace.as_number(row.start),
                                      trace.as_number(row.end), row.service)
        for group_id, row in known_rows.items()
    }
    try:
        changes = assembly.merge_frame(trace.bounds(), known, messages)
    except Conflict as error:
        raise IngestError(str(error)) from None

    if changes.new_spans:
        Span.objects.bulk_create(
            [Span(trace_id=trace_id, group_id=s.group_id, name=s.name or "", service=s.service,
                  start=_decimal(s.start), end=_decimal(s.end)) for s in changes.new_spans]
        )
    if changes.finished_spans:
        rows = []
        for span in changes.finished_spans:
            row = known_rows[span.group_id]
            row.name, row.service = span.name or "", span.service
            row.start, row.end = _decimal(span.start), _decimal(span.end)
            rows.append(row)
        Span.objects.bulk_update(rows, ["name", "service", "start", "end"])
    if changes.events:
        Event.objects.bulk_create(
            [Event(trace_id=trace_id, name=e.name, timestamp=_decimal(e.timestamp))
             for e in changes.events]
        )

    bounds = changes.bounds
    trace.start, trace.end = _decimal(bounds.start), _decimal(bounds.end)
    trace.group_id, trace.end_group_id = bounds.start_group_id or "", bounds.end_group_id or ""
    trace.service = bounds.service
    trace.unfinished_span_count = bounds.unfinished_spans
    trace.span_count += len(changes.new_spans)
    trace.event_count += len(changes.events)
    if trace.start is not None and trace.end is not None:
        trace.duration = trace.end - trace.start
    if bounds.ready:
        # The only assembly of a trace: once, when its last missing piece arrived.
        result = assembly.assemble(bounds, trace.span_records(), trace.event_records())
        trace.status, trace.problems, trace.name = result.status, result.problems, result.name
        trace.completed = timezone.now()
    elif not trace.name:
        trace.name = next((s.name for s in changes.new_spans if s.name), "")
    trace.save()

    stored = len(messages) - changes.repeats
    publish_after_commit(trace_group(trace_id), {
        "event": "trace.updated", "id": trace_id, "status": trace.status,
        "span_count": trace.span_count, "event_count": trace.event_count,
    })
    return IngestResult(trace_id, trace.status, stored, changes.repeats, list(trace.problems))


def _lock_trace(trace_id: int) -> Trace:
    """The trace row, locked until the transaction ends (created open if new).

    Two connections sending frames of one trace are serialised here, so each frame sees the
    other's spans. SQLite locks the whole database for writers (IMMEDIATE transactions)."""
    trace = Trace.objects.select_for_update().filter(id=trace_id).first()
    if trace is None:
        Trace.objects.bulk_create([Trace(id=trace_id)], ignore_conflicts=True)
        trace = Trace.objects.select_for_update().get(id=trace_id)
    return trace


def _decimal(value) -> Decimal | None:
    if value is None:
        return None
    # repr keeps every digit the float has, and nothing invented beyond it.
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def reply_for(result: IngestResult) -> str | None:
    """Seed 000's reply for a frame, None while the trace is incomplete."""
    if result.status == COMPLETE:
        return STORED_REPLY
    if result.status == INCONSISTENT:
        return f"Error: trace {result.trace_id} is inconsistent: {'; '.join(result.problems)}"
    return None


def trace_tree(trace: Trace) -> assembly.Assembly:
    """The tree of a stored trace (a preview while it is open)."""
    return assembly.assemble(trace.bounds(), trace.span_records(), trace.event_records())


def search_traces(filters: dict, traces=None):
    """Traces matching TraceFilterForm's cleaned data, newest first."""
    traces = Trace.objects.all() if traces is None else traces
    if filters.get("name"):
        traces = traces.filter(
            Exists(Span.objects.filter(trace_id=OuterRef("pk"), name=filters["name"]))
        )
    if filters.get("service"):
        traces = traces.filter(service=filters["service"])
    if filters.get("status"):
        traces = traces.filter(status=filters["status"])
    if filters.get("min_duration") is not None:
        traces = traces.filter(duration__gte=filters["min_duration"])
    if filters.get("max_duration") is not None:
        traces = traces.filter(duration__lte=filters["max_duration"])
    if filters.get("since"):
        traces = traces.filter(created__gte=filters["since"])
    if filters.get("until"):
        traces = traces.filter(created__lt=filters["until"])
    return traces.order_by("-created", "-id")


def delete_trace(trace: Trace) -> None:
    trace_id = trace.id
    with transaction.atomic():
        trace.delete()
        publish_after_commit(trace_group(trace_id), {"event": "trace.deleted", "id": trace_id})


def missing_parts(trace: Trace) -> list[str]:
    return assembly.missing_parts(trace.bounds()) if trace.is_open else []
