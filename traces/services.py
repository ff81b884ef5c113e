"""The one way trace messages get in, whatever the wire format: `ingest_messages` /
`ingest_frames` (`aingest_frames` on the event loop), and what is done with a stored trace.

Each batch is one transaction on a locked trace row: validate, fold into the stored trace, write
the new rows in bulk, assemble once the trace is ready, and publish a live frame after commit.
A refused frame stores nothing; an accepted one is durable before the client gets any reply.
The statements live in traces.storage, list queries in traces.search, the replies' texts and
close codes in traces.messages.
"""

from dataclasses import dataclass
from decimal import Decimal

import psycopg
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from plumbing import publisher
from plumbing.live import publish_after_commit
from traces import assembly, asyncdb, service_names, span_ingest, storage
from traces.assembly import COMPLETE, INCONSISTENT, OPEN, Conflict
from traces.live import trace_group
from traces.messages import (
    SPAN_END,
    SPAN_START,
    STORED_REPLY,
    TRACE_END,
    FrameError,
    Message,
    inconsistent_reply,
    parse_acked_frame,
    parse_frame,
)
from traces.models import Span, Trace


class IngestError(Exception):
    """Input the trace cannot take; the text is meant for the client."""


@dataclass
class IngestResult:
    trace_id: int
    status: str  # OPEN, COMPLETE or INCONSISTENT after this frame
    stored: int  # messages written by this frame
    repeats: int  # exact repeats of stored messages, ignored
    problems: list[str]
    span_count: int = 0
    event_count: int = 0
    acked: int | None = None  # ?ack=1: every frame with a seq up to this one is stored
    # The trace had rows before this transaction: other connections may be waiting on it, so
    # its decision must be told to every server process (consumers.DecisionListener).
    existed: bool = True

    @property
    def finished(self) -> bool:
        return self.status != OPEN

    @property
    def decision(self) -> dict:
        """What the trace's other ingest connections hear once it is decided."""
        return {"event": "trace.decided", "id": self.trace_id, "reply": reply_for(self)}

    @property
    def live_frame(self) -> dict:
        """What the trace page hears of this frame (it refetches the trace)."""
        return {"event": "trace.updated", "id": self.trace_id, "status": self.status,
                "span_count": self.span_count, "event_count": self.event_count}


def ingest_group(trace_id: int | None = None) -> str:
    """Channel-layer group on which a trace's decision reaches its other ingest connections.

    One group for all traces (the decision names its trace): each server process subscribes to
    it once, not each connection to a group of its own trace (a Redis round trip per socket for
    the rare trace sent over several connections). A client that reconnected while its old
    connection's last frames were still queued gets its answer on the new connection, on
    whichever process it landed."""
    return "traces.ingest.decided"


def ingest_messages(trace_id: int, messages: list[Message], publish: bool = True) -> IngestResult:
    """Store validated messages of trace `trace_id`; IngestError (nothing stored) otherwise.

    With publish=False the caller sends `result.live_frame` itself (the websocket consumer does,
    from its event loop, throttled) once this returns, i.e. after the commit."""
    result, refused = _ingest_parsed(trace_id, [messages], publish)
    if refused is not None:
        raise refused
    return result


def ingest_frames(trace_id: int, frames: list, publish: bool = True, acked: bool = False):
    """Frames that arrived together on one connection (JSON texts, in order), in one transaction
    with the outcome of storing them one by one: each frame all or nothing; the first refused
    frame stops the batch (the ones before it are kept); the frame that decides the trace ends
    it (the connection is closing). Returns (IngestResult of the stored frames or None,
    IngestError of the refused frame or None).

    acked: the connection asked for acknowledgements, its frames are {"seq", "messages"}
    envelopes (messages.parse_acked_frame); a frame whose seq is not above the trace's highest
    stored one is a repeat (a client resending what it was not sure of) and is not stored again.
    """
    parsed, seqs, refused = _parse_frames(frames, acked)
    if not parsed:
        return None, refused
    result, conflict = _ingest_parsed(trace_id, parsed, publish, seqs if acked else None)
    return _outcome(result, conflict, refused)


async def aingest_frames(trace_id: int, frames: list, acked: bool = False, new: bool = False):
    """ingest_frames (publish=False) on the event loop, over an async PostgreSQL connection of
    traces.asyncdb: no thread; a round trip per step of the transaction (_ingest_steps).
    Only for PostgreSQL (asyncdb.available()).

    new: the trace is probably new (a connection's first batch). The batch is then first merged
    into an empty trace and written in one statement that does nothing if the trace exists: a
    usual client's trace (one frame on a new socket) costs one round trip and one statement.
    If the trace existed, the batch takes the usual way."""
    parsed, seqs, refused = _parse_frames(frames, acked)
    if not parsed:
        return None, refused
    # The service picker's names (an optional field of this protocol's messages).
    services = service_names.not_stored_lately(service_names.of_messages(parsed))
    if services:
        await asyncdb.run_alone(_SERVICES, [services])
        service_names.stored_lately(services)
    if new:
        whole = _as_new_trace(trace_id, parsed, seqs if acked else None)
        if whole is not None:
            statement, result, conflict = whole
            try:
                made = await asyncdb.run_alone(*statement)
            except asyncdb.StaleConnection:
                made = False  # the usual way, on another connection, finds out
            if made:
                return _outcome(result, conflict, refused)
    for attempt in (1, 2):
        steps = _ingest_steps(trace_id, parsed, seqs if acked else None)
        try:
            async with asyncdb.transaction() as db:
                result, conflict = await storage.run_async(steps, db)
            break
        except asyncdb.StaleConnection:
            if attempt == 2:
                raise
        except psycopg.IntegrityError:
            return None, _changed_meanwhile(trace_id)
    return _outcome(result, conflict, refused)


# One statement with a value to return (asyncdb.run_alone reads one): the names inserted.
_SERVICES = ("WITH made AS (" + service_names.INSERT.format("%s") + " RETURNING 1) "
             "SELECT count(*) FROM made")


def _as_new_trace(trace_id: int, frames: list[list[Message]], seqs):
    """(the statement storing the batch as a new trace, its IngestResult, refused frame), or
    None when the batch is refused as a whole (the usual way then says why, from the stored
    trace)."""
    steps = _ingest_steps(trace_id, frames, seqs)
    now = timezone.now()
    try:
        steps.send(None)  # storage.Lock
        write = steps.send((Trace(id=trace_id, created=now, updated=now), [], True, None))
        steps.send(None)
    except StopIteration as done:
        return storage.create_statement(write.trace, write.changes), *done.value
    except IngestError:
        return None
    raise AssertionError("a batch of a new trace has no step after its write")  # pragma: no cover


def _parse_frames(frames: list, acked: bool):
    parsed, seqs, refused = [], [], None
    for data in frames:
        try:
            if acked:
                seq, messages = parse_acked_frame(
                    data, settings.TRACE_MAX_FRAME_BYTES, settings.TRACE_MAX_FRAME_MESSAGES)
                seqs.append(seq)
                parsed.append(messages)
            else:
                parsed.append(parse_frame(
                    data, settings.TRACE_MAX_FRAME_BYTES, settings.TRACE_MAX_FRAME_MESSAGES
                ))
        except FrameError as error:
            refused = IngestError(str(error))
            break
    return parsed, seqs, refused


def _outcome(result, conflict, refused):
    if result is not None and result.finished:
        return result, None
    return result, conflict or refused


def _changed_meanwhile(trace_id: int) -> IngestError:
    # Only reachable if the row lock were bypassed; the unique (trace, group_id) constraint
    # still keeps the trace whole.
    return IngestError(
        f"trace {trace_id} was changed by another connection at the same time; "
        "nothing from this frame was stored, send it again"
    )


def _ingest_parsed(trace_id: int, frames: list[list[Message]], publish: bool, seqs=None):
    try:
        with transaction.atomic():
            service_names.remember(service_names.of_messages(frames))
            result, refused = storage.run_sync(_ingest_steps(trace_id, frames, seqs))
            if result is not None and publish:
                publisher.publish(trace_group(trace_id), result.live_frame)
                if result.finished:
                    publish_after_commit(ingest_group(trace_id), result.decision)
            return result, refused
    except IntegrityError:
        return None, _changed_meanwhile(trace_id)


def _stored_already(trace: Trace, resent: int, acked: int) -> IngestResult:
    """The result of frames that were all repeats of stored ones: nothing written, acknowledged
    (again) up to `acked`."""
    return IngestResult(trace.id, trace.status, 0, resent, list(trace.problems),
                        span_count=trace.span_count, event_count=trace.event_count, acked=acked)


def _ingest_steps(trace_id: int, frames: list[list[Message]], seqs: list[int] | None = None):
    group_ids = list({m.group_id for frame in frames for m in frame
                      if m.type in (SPAN_START, SPAN_END)})
    # A batch with the trace's end will most likely complete it: every stored row is then
    # read in the lock's round trip, not in one of its own before the assembly.
    ending = any(m.type == TRACE_END for frame in frames for m in frame)
    trace, known_span_rows, created, event_rows = yield storage.Lock(trace_id, group_ids, ending)
    if seqs is not None and all(seq <= trace.last_seq for seq in seqs):
        # Only frames already stored (resent after a reconnect): acknowledged again, and if
        # they decided the trace, its reply again.
        return _stored_already(trace, sum(map(len, frames)), trace.last_seq), None
    if not trace.is_open:
        raise IngestError(
            f"trace {trace_id} is already stored ({trace.status}); send a new trace under a new id"
        )

    number = storage.stored_number(trace)
    # Every stored span when the lock read them all (event_rows then too): more than the batch
    # names, which merge_frame allows.
    known_rows = _known_rows(known_span_rows, number)
    spans = {group_id: record for group_id, (_, record) in known_rows.items()}
    bounds, touched, events, repeats, refused = trace.bounds(), {}, [], 0, None
    merged, acked, span_total, resent = [], None, trace.span_count, 0
    for index, messages in enumerate(frames):
        seq = seqs[index] if seqs is not None else None
        if seq is not None and seq <= max(trace.last_seq, acked or 0):
            acked = max(acked or 0, trace.last_seq)  # a repeat of a stored frame
            resent += len(messages)
            continue
        try:
            changes = assembly.merge_frame(bounds, spans, messages)
        except Conflict as error:
            refused = IngestError(str(error))
            break
        new = sum(1 for span in changes.new_spans if span.group_id not in spans)
        if span_total + new > settings.TRACE_MAX_SPANS:
            refused = IngestError(
                f"trace {trace_id} would have {span_total + new} spans, over the limit of "
                f"{settings.TRACE_MAX_SPANS} spans per trace (TRACE_MAX_SPANS); nothing from "
                "this frame was stored")
            break
        span_total += new
        bounds = changes.bounds
        for span in changes.new_spans + changes.finished_spans:
            spans[span.group_id] = touched[span.group_id] = span
        events += changes.events
        repeats += changes.repeats
        merged.append(messages)
        if seq is not None:
            acked = trace.last_seq = seq
        if bounds.ready:
            break
    if not merged:
        if acked is None:
            raise refused
        return _stored_already(trace, resent, acked), refused
    frames = merged
    if trace.integer_timestamps and any(isinstance(m.timestamp, float)
                                        for frame in frames for m in frame):
        trace.integer_timestamps = False
    changes = assembly.FrameChanges(
        bounds,
        new_spans=[s for g, s in touched.items() if g not in known_rows],
        finished_spans=[s for g, s in touched.items() if g in known_rows],
        events=events, repeats=repeats,
    )

    trace.start, trace.end = _decimal(bounds.start), _decimal(bounds.end)
    trace.group_id, trace.end_group_id = bounds.start_group_id or "", bounds.end_group_id or ""
    trace.service = bounds.service
    trace.unfinished_span_count = bounds.unfinished_spans
    trace.span_count += len(changes.new_spans)
    trace.event_count += len(changes.events)
    trace.error_count += sum(
        1 for g, s in touched.items()
        if s.status_code == Span.ERROR and (g not in known_rows
                                            or known_rows[g][1].status_code != Span.ERROR))
    if trace.start is not None and trace.end is not None:
        trace.duration = trace.end - trace.start
    root = assembly.open_root(trace.as_number(trace.root_start) if trace.name else None,
                              touched.values())
    if root is not None:
        trace.name, trace.root_start = root.name, _decimal(root.start)
    if bounds.ready:
        # The only assembly of a trace: once, when its last missing piece arrived. A trace
        # whose every row is in this batch is assembled from memory; otherwise the stored rows
        # are read once, here.
        span_records, event_records = list(touched.values()), list(events)
        if not created:
            stored_rows = known_rows
            if event_rows is None:
                span_rows, event_rows = yield storage.ReadAll(trace)
                stored_rows = _known_rows(span_rows, number)
            stored = {group_id: record for group_id, (_, record) in stored_rows.items()}
            stored.update(touched)
            span_records = list(stored.values())
            event_records += [assembly.EventRecord(name, number(timestamp))
                              for name, timestamp in event_rows]
        # Every timestamp in the client's unit. The records are rebuilt, not _replace()d: that
        # takes under half the time, at a record per message.
        in_unit = trace.as_number
        make_span, make_event = assembly.SpanRecord, assembly.EventRecord
        result = assembly.assemble(
            bounds,
            [make_span(group_id, name, in_unit(start), in_unit(end), service, attrs, code, text)
             for group_id, name, start, end, service, attrs, code, text in span_records],
            [make_event(name, in_unit(timestamp), attrs)
             for name, timestamp, attrs in event_records])
        trace.status, trace.problems, trace.name = result.status, result.problems, result.name
        trace.completed = timezone.now()
    yield storage.Write(trace, changes, known_rows)

    stored = sum(len(frame) for frame in frames) - repeats
    return IngestResult(trace_id, trace.status, stored, repeats + resent, list(trace.problems),
                        span_count=trace.span_count, event_count=trace.event_count,
                        acked=acked, existed=not created), refused


def _known_rows(span_rows, number) -> dict:
    """Stored span rows (as storage's steps answer them) -> {group_id: (row id, SpanRecord)},
    timestamps as the client sent them (`number`: storage.stored_number)."""
    return {
        group_id: (row_id, assembly.SpanRecord(
            group_id, name or None, number(start), number(end), service,
            storage.stored_json(attributes), status_code, status_message))
        for row_id, group_id, name, service, start, end, attributes, status_code, status_message
        in span_rows
    }


def _decimal(value) -> Decimal | None:
    if value is None:
        return None
    # repr keeps every digit the float has, and nothing invented beyond it.
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def reply_for(result: IngestResult) -> str | None:
    """The protocol's reply for a frame, None while the trace is incomplete."""
    if result.status == COMPLETE:
        return STORED_REPLY
    if result.status == INCONSISTENT:
        return inconsistent_reply(result.trace_id, result.problems)
    return None


def trace_tree(trace: Trace) -> assembly.Assembly:
    """The tree of a stored trace (a preview while it is open), its span nodes with their
    OpenTelemetry details. Traces of OTLP and Zipkin nest by parent span id (traces.otel)."""
    if trace.trace_id:
        return assembly.Assembly(span_ingest.current_status(trace),
                                 span_ingest.trace_tree(trace), [], trace.name)
    return assembly.assemble(trace.bounds(), trace.span_records(), trace.event_records(),
                             detail=True)


def delete_trace(trace: Trace) -> None:
    trace_id = trace.id
    with transaction.atomic():
        trace.delete()
        publisher.publish(trace_group(trace_id), {"event": "trace.deleted", "id": trace_id})


def missing_parts(trace: Trace) -> list[str]:
    if trace.trace_id:
        return span_ingest.missing_parts(trace)
    return assembly.missing_parts(trace.bounds()) if trace.is_open else []
