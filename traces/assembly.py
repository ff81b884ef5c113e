"""Trace assembly: messages of the trace websocket protocol -> a span tree (pure: no Django import).

Two steps, both independent of how messages were split into frames:

- `merge_frame` folds one frame into what is already known of a trace (only the spans the frame
  names need to be known). It pairs SPAN_START/SPAN_END by group_id, takes TRACE_START/TRACE_END,
  ignores exact repeats (a client resending after a dropped connection) and refuses conflicting
  repeats. The caller stores the changes.
- `assemble` builds the tree from the whole trace once it is ready (`TraceBounds.ready`), checks
  it, and gives readable reasons when it is inconsistent. It also draws a preview of an open
  trace for the live page.

Placement rule (the protocol's): items are sorted by start; on equal start the longer span first and
spans before events. Each item goes under the latest-starting span that contains it, bounds
included; top-level items are children of the trace.
"""

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, cast

from traces.messages import EVENT, SPAN_START, TRACE_END, TRACE_START, Message

OPEN = "open"
COMPLETE = "complete"
INCONSISTENT = "inconsistent"


class Conflict(ValueError):
    """A message contradicts what the trace already holds (e.g. a span started twice)."""


class SpanRecord(NamedTuple):  # a tuple: thousands are made per second while ingesting
    group_id: str
    name: str | None = None  # known from SPAN_START
    start: int | float | None = None
    end: int | float | None = None
    service: str = ""
    attributes: dict | None = None
    status_code: int = 0  # OpenTelemetry's: 0 unset, 1 ok, 2 error
    status_message: str = ""

    @property
    def finished(self) -> bool:
        return self.start is not None and self.end is not None


class EventRecord(NamedTuple):
    name: str
    timestamp: int | float
    attributes: dict | None = None


@dataclass(frozen=True)
class TraceBounds:
    start: int | float | None = None
    start_group_id: str | None = None
    end: int | float | None = None
    end_group_id: str | None = None
    service: str = ""
    unfinished_spans: int = 0  # spans with only a start or only an end so far

    @property
    def ready(self) -> bool:
        """Everything needed to decide: both trace messages and no half-known span."""
        return self.start is not None and self.end is not None and self.unfinished_spans == 0


@dataclass
class FrameChanges:
    bounds: TraceBounds
    new_spans: list[SpanRecord] = field(default_factory=list)
    finished_spans: list[SpanRecord] = field(default_factory=list)  # known spans now finished
    events: list[EventRecord] = field(default_factory=list)
    repeats: int = 0  # exact repeats of stored messages, ignored


def merge_frame(
    bounds: TraceBounds, known_spans: dict[str, SpanRecord], messages: list[Message]
) -> FrameChanges:
    """Fold `messages` into a trace. `known_spans` must hold every stored span whose group_id
    appears in `messages` (it is not modified). Raises Conflict naming the message."""
    spans: dict[str, SpanRecord] = {}  # spans touched by this frame, as they will be
    changes = FrameChanges(bounds)
    for index, message in enumerate(messages):
        where = f"message {index} ({message.type})"
        if message.type == EVENT:
            # parse_frame guarantees an EVENT's name and a span message's group_id.
            changes.events.append(EventRecord(cast(str, message.name), message.timestamp,
                                              message.attributes))
        elif message.type in (TRACE_START, TRACE_END):
            changes.bounds, repeat = _merge_bound(changes.bounds, message, where)
            changes.repeats += repeat
        else:
            group_id = cast(str, message.group_id)
            span = spans.get(group_id) or known_spans.get(group_id) or SpanRecord(group_id)
            merged, repeat = _merge_span(span, message, where)
            changes.repeats += repeat
            spans[group_id] = merged

    unfinished = changes.bounds.unfinished_spans
    for group_id, span in spans.items():
        before = known_spans.get(group_id)
        if before is None:
            changes.new_spans.append(span)
            unfinished += 0 if span.finished else 1
        elif span != before:
            changes.finished_spans.append(span)
            unfinished -= 1  # a known span only changes by getting its missing half
    changes.bounds = replace(changes.bounds, unfinished_spans=unfinished)
    return changes


def _merge_bound(bounds: TraceBounds, message: Message, where: str):
    if message.type == TRACE_START:
        current, current_group = bounds.start, bounds.start_group_id
    else:
        current, current_group = bounds.end, bounds.end_group_id
    if current is not None:
        if current == message.timestamp and current_group == message.group_id:
            return bounds, 1
        raise Conflict(
            f"{where}: the trace already has a {message.type} "
            f"(group_id {current_group!r}, timestamp {current!r})"
        )
    if message.type == TRACE_START:
        return replace(bounds, start=message.timestamp, start_group_id=message.group_id,
                       service=message.service or bounds.service), 0
    return replace(bounds, end=message.timestamp, end_group_id=message.group_id), 0


def _merge_span(span: SpanRecord, message: Message, where: str):
    if message.type == SPAN_START:
        if span.start is not None:
            if span.start == message.timestamp and span.name == message.name:
                return span, 1
            raise Conflict(
                f"{where}: span {span.group_id!r} was already started "
                f"(name {span.name!r}, timestamp {span.start!r})"
            )
        return span._replace(start=message.timestamp, name=message.name,
                             service=message.service,
                             attributes=_merged(span.attributes, message.attributes)), 0
    if span.end is not None:
        if span.end == message.timestamp:
            return span, 1
        raise Conflict(
            f"{where}: span {span.group_id!r} was already ended (timestamp {span.end!r})"
        )
    status_code, status_message = message.status or (span.status_code, span.status_message)
    return span._replace(end=message.timestamp,
                         attributes=_merged(span.attributes, message.attributes),
                         status_code=status_code, status_message=status_message), 0


def _merged(stored: dict | None, sent: dict | None) -> dict | None:
    """A span's attributes: SPAN_START's, then SPAN_END's (which win on a shared key)."""
    if not sent:
        return stored
    return {**stored, **sent} if stored else sent


# --- assembly -----------------------------------------------------------------------------------

@dataclass
class Assembly:
    status: str  # OPEN, COMPLETE or INCONSISTENT
    tree: dict
    problems: list[str]
    name: str = ""  # the first top-level span's name: what the trace is about


STATUS_NAMES = ("unset", "ok", "error")


def generated_span_id(group_id: str) -> str:
    """The span id of a span of the trace websocket protocol (which names spans by group_id):
    16 hex digits, as OpenTelemetry's, the same every time."""
    return hashlib.blake2b(group_id.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def assemble(
    bounds: TraceBounds, spans: list[SpanRecord], events: list[EventRecord],
    detail: bool = False,
) -> Assembly:
    """The tree of a trace and its status.

    A ready trace is COMPLETE or INCONSISTENT (with reasons). A trace that is not ready is OPEN:
    its tree is a preview where unknown bounds are the earliest/latest timestamp seen and spans
    still missing a half are marked "open": true.

    detail: span nodes also carry what OpenTelemetry's spans have (span_id, generated from the
    group_id; parent_span_id, of the span the node is placed under; kind; status; attributes)
    and events their attributes: the REST tree. Ingest only needs the status and the name.
    """
    problems = _problems(bounds, spans, events) if bounds.ready else []
    status = OPEN if not bounds.ready else INCONSISTENT if problems else COMPLETE

    seen = [t for s in spans for t in (s.start, s.end) if t is not None]
    seen += [e.timestamp for e in events] + [t for t in (bounds.start, bounds.end) if t is not None]
    lowest, highest = (min(seen), max(seen)) if seen else (None, None)

    # (start, end, kind, node) with kind 0 = span, 1 = event
    items: list[tuple[Any, Any, int, dict[str, Any]]] = []
    for span in spans:
        start = span.start if span.start is not None else lowest
        end = span.end if span.end is not None else highest
        node: dict[str, Any] = {"name": span.name if span.name is not None else span.group_id,
                "start": start, "end": end, "type": "SPAN"}
        if span.service or detail:
            node["service"] = span.service
        if not span.finished:
            node["open"] = True
        if detail:
            node.update(span_id=generated_span_id(span.group_id), parent_span_id=None,
                        kind="internal", attributes=span.attributes or {},
                        status={"code": STATUS_NAMES[span.status_code],
                                "message": span.status_message})
        items.append((start, end, 0, node))
    for event in events:
        event_node: dict[str, Any] = {"name": event.name, "timestamp": event.timestamp,
                                      "type": "EVENT"}
        if detail:
            event_node["attributes"] = event.attributes or {}
        items.append((event.timestamp, event.timestamp, 1, event_node))
    # Ties beyond the protocol's rule are broken by name then end, so that the tree never depends on
    # the order in which messages arrived.
    items.sort(key=lambda item: (item[0], -(item[1] - item[0]), item[2], item[3]["name"],
                                 item[1]))

    tree: dict[str, Any] = {"start": bounds.start if bounds.start is not None else lowest,
            "end": bounds.end if bounds.end is not None else highest,
            "type": "TRACE", "children": []}
    if bounds.service:
        tree["service"] = bounds.service
    if status == OPEN:
        tree["open"] = True
    stack: list[tuple] = []  # spans that may still contain later items, latest-starting on top
    for start, end, kind, node in items:
        while stack and not (stack[-1][0] <= start and end <= stack[-1][1]):
            stack.pop()
        parent = stack[-1][2] if stack else tree
        parent.setdefault("children", []).append(node)
        if detail and kind == 0 and stack:
            node["parent_span_id"] = parent["span_id"]
        if kind == 0:
            stack.append((start, end, node))

    name = next((child["name"] for child in tree["children"] if child["type"] == "SPAN"), "")
    return Assembly(status, tree, problems, name)


def open_root(current_start, spans) -> SpanRecord | None:
    """The span an open trace is named after, if one of `spans` takes over from the current
    one (which starts at `current_start`, None when there is none yet).

    The root is the span without a parent: of the named spans, the one that starts first, and on
    an equal start the longer one, a span still open counting as longest (as in assemble()).
    A span starting at the same moment as the current root does not replace it: the current one
    may be the longer, its end is not known yet.
    """
    named = [span for span in spans if span.name and span.start is not None]
    if not named:
        return None
    first = min(named, key=lambda span: (
        span.start, span.end is not None, -(span.end - span.start) if span.end is not None else 0,
        span.name))
    if current_start is not None and first.start >= current_start:
        return None
    return first


def _problems(bounds: TraceBounds, spans, events) -> list[str]:
    assert bounds.start is not None and bounds.end is not None  # called when bounds.ready
    problems = []
    if bounds.start_group_id != bounds.end_group_id:
        problems.append(
            f"TRACE_START has group_id {bounds.start_group_id!r} but TRACE_END has "
            f"{bounds.end_group_id!r}"
        )
    if bounds.end < bounds.start:
        problems.append(f"the trace ends at {bounds.end!r} before it starts at {bounds.start!r}")
    inside = f"inside the trace [{bounds.start!r}, {bounds.end!r}]"
    for span in sorted(spans, key=lambda s: (s.start, s.group_id)):
        label = f"span {span.name!r} (group_id {span.group_id!r})"
        if span.end < span.start:
            problems.append(f"{label} ends at {span.end!r} before it starts at {span.start!r}")
        elif span.start < bounds.start or span.end > bounds.end:
            problems.append(f"{label} [{span.start!r}, {span.end!r}] is not {inside}")
    for event in sorted(events, key=lambda e: (e.timestamp, e.name)):
        if not bounds.start <= event.timestamp <= bounds.end:
            problems.append(f"event {event.name!r} at {event.timestamp!r} is not {inside}")
    return problems


def missing_parts(bounds: TraceBounds) -> list[str]:
    """What an open trace still waits for, in words (for pages and the API)."""
    missing = []
    if bounds.start is None:
        missing.append("TRACE_START")
    if bounds.end is None:
        missing.append("TRACE_END")
    if bounds.unfinished_spans:
        missing.append(f"the other half of {bounds.unfinished_spans} span(s)")
    return missing
