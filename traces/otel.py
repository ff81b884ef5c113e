"""Spans as OpenTelemetry models them: decoding OTLP (protobuf and JSON) and Zipkin v2 into one
record, and the tree of such a trace, nested by parent span id (no Django import).

OTLP/HTTP is the OpenTelemetry protocol specification's: an ExportTraceServiceRequest, as
protobuf or as OTLP/JSON (protobuf's JSON mapping, except that trace and span ids are hex, not
base64). Zipkin v2 is a JSON list of spans with microsecond timestamps.

A span that cannot be stored (an id of the wrong size, an end before its start) is refused on
its own: the request's other spans are stored, and the answer says how many were refused and
why (OTLP's partial_success).
"""

import base64
import binascii
import json
import math
from typing import Any, NamedTuple

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage

MAX_TEXT = 255  # names and services are stored in 255-character columns
MAX_TIME = 10**20  # nanoseconds, as NUMERIC(26, 6) holds them (uint64 fits)
KIND_NAMES = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUS_NAMES = ("unset", "ok", "error")
ERROR = 2
ZIPKIN_KINDS = {"CLIENT": 3, "SERVER": 2, "PRODUCER": 4, "CONSUMER": 5}


def text(value: str) -> str:
    """Text as the database stores it: no NUL (PostgreSQL refuses it), no lone surrogate (JSON
    may carry one; it is no text)."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


class InvalidData(ValueError):
    """A body that cannot be decoded at all (OTLP: 400 with a google.rpc.Status)."""


class OtelSpan(NamedTuple):
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_span_id: str  # "" for a root span
    name: str
    kind: int  # KIND_NAMES' index
    start: int  # nanoseconds since 1970
    end: int
    status_code: int  # STATUS_NAMES' index
    status_message: str
    attributes: dict
    resource: dict  # the resource's attributes
    service: str  # the resource's service.name
    events: list  # [{"name", "time", "attributes"?}], time in ns
    links: list  # [{"trace_id", "span_id", "attributes"?}]


class Decoded(NamedTuple):
    spans: list[OtelSpan]
    rejected: int
    message: str  # why spans were refused ("" when none was)


# --- OTLP ---------------------------------------------------------------------------------------

def decode_otlp_protobuf(body: bytes) -> Decoded:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as error:
        raise InvalidData(f"not an ExportTraceServiceRequest in protobuf: {error}") from None
    return _from_request(request)


def _json_body(body: bytes, kind: type, refusal: str):
    """The body's JSON document; InvalidData unless it is JSON and a `kind`."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidData(f"not JSON: {error}") from None
    if not isinstance(document, kind):
        raise InvalidData(refusal)
    return document


def decode_otlp_json(body: bytes) -> Decoded:
    """OTLP/JSON: protobuf's JSON mapping (camelCase or original field names, enums as integers
    or names, 64-bit integers as strings or numbers, unknown fields ignored), with trace and
    span ids in hex."""
    document = _json_body(body, dict, "an ExportTraceServiceRequest must be a JSON object")
    try:
        _hex_ids_to_base64(document)
        request = json_format.ParseDict(document, ExportTraceServiceRequest(),
                                        ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as error:
        raise InvalidData(f"not an ExportTraceServiceRequest in OTLP/JSON: {error}") from None
    return _from_request(request)


def _hex_ids_to_base64(document: dict) -> None:
    """OTLP/JSON's ids are hex; protobuf's JSON mapping reads bytes as base64."""
    for resource_spans in _list(document, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            for span in _list(scope_spans, "spans"):
                _rewrite_ids(span, ("traceId", "trace_id", "spanId", "span_id", "parentSpanId",
                                    "parent_span_id"))
                for link in _list(span, "links"):
                    _rewrite_ids(link, ("traceId", "trace_id", "spanId", "span_id"))


def _list(parent, *keys) -> list:
    if not isinstance(parent, dict):
        return []
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            return value
    return []


def _rewrite_ids(item, keys) -> None:
    if not isinstance(item, dict):
        return
    for key in keys:
        value = item.get(key)
        if isinstance(value, str) and value:
            try:
                item[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise InvalidData(f"{key} {value[:40]!r} is not hex") from None


def _from_request(request: ExportTraceServiceRequest) -> Decoded:
    spans: list[OtelSpan] = []
    rejected, reasons = 0, []  # type: int, list[str]
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        service = resource.get("service.name")
        service = text(service[:MAX_TEXT]) if isinstance(service, str) else ""
        for scope_spans in resource_spans.scope_spans:
            for message in scope_spans.spans:
                try:
                    spans.append(_span(message, resource, service))
                except ValueError as error:
                    rejected += 1
                    if len(reasons) < 3:
                        reasons.append(str(error))
    return Decoded(spans, rejected, _why(rejected, reasons))


def _why(rejected: int, reasons: list[str]) -> str:
    if not rejected:
        return ""
    return f"{rejected} span(s) refused: " + "; ".join(reasons) + ("; ..." if rejected > 3 else "")


def _span(message: SpanMessage, resource: dict, service: str) -> OtelSpan:
    trace_id, span_id = message.trace_id.hex(), message.span_id.hex()
    where = f"span {span_id or '?'} of trace {trace_id or '?'}"
    _check_ids(where, trace_id, span_id, message.parent_span_id.hex())
    if not message.name:
        raise ValueError(f"{where}: no name")
    start, end = message.start_time_unix_nano, message.end_time_unix_nano
    _check_times(where, start, end)
    events = []
    for event in message.events:
        item: dict[str, Any] = {"name": event.name, "time": event.time_unix_nano}
        if event.attributes:
            item["attributes"] = attributes_of(event.attributes)
        events.append(item)
    links = []
    for link in message.links:
        item = {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()}
        if link.attributes:
            item["attributes"] = attributes_of(link.attributes)
        links.append(item)
    return OtelSpan(
        trace_id, span_id, message.parent_span_id.hex(), text(message.name[:MAX_TEXT]),
        message.kind if 0 <= message.kind < len(KIND_NAMES) else 0, start, end,
        message.status.code if 0 <= message.status.code <= ERROR else 0,
        text(message.status.message), attributes_of(message.attributes), resource, service,
        events, links)


def _check_ids(where: str, trace_id: str, span_id: str, parent_span_id: str) -> None:
    if len(trace_id) != 32 or trace_id == "0" * 32:
        raise ValueError(f"{where}: the trace id must be 16 bytes, not all zero")
    if len(span_id) != 16 or span_id == "0" * 16:
        raise ValueError(f"{where}: the span id must be 8 bytes, not all zero")
    if parent_span_id and len(parent_span_id) != 16:
        raise ValueError(f"{where}: the parent span id must be 8 bytes (or empty)")


def _check_times(where: str, start: int, end: int) -> None:
    if not 0 < start < MAX_TIME or not 0 < end < MAX_TIME:
        raise ValueError(f"{where}: start and end times must be set")
    if end < start:
        raise ValueError(f"{where}: ends before it starts")


def attributes_of(key_values) -> dict:
    """OTLP KeyValues -> {key: value} (strings, numbers, booleans, lists, objects)."""
    return {kv.key: _value(kv.value) for kv in key_values}


def _value(value):
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else str(number)  # JSON has no NaN
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def otlp_response(decoded: Decoded) -> ExportTraceServiceResponse:
    response = ExportTraceServiceResponse()
    if decoded.rejected:
        response.partial_success.rejected_spans = decoded.rejected
        response.partial_success.error_message = decoded.message
    return response


# --- Zipkin v2 ----------------------------------------------------------------------------------

def decode_zipkin(body: bytes) -> Decoded:
    """Zipkin v2's JSON: a list of spans; ids in hex (64- or 128-bit trace ids), timestamp and
    duration in microseconds, tags as attributes, annotations as events. An "error" tag (or
    OpenTelemetry's otel.status_code) is the error status."""
    document = _json_body(body, list, "Zipkin v2 spans must be a JSON list")
    spans: list[OtelSpan] = []
    rejected, reasons = 0, []  # type: int, list[str]
    for index, item in enumerate(document):
        try:
            spans.append(_zipkin_span(item))
        except (ValueError, TypeError, AttributeError) as error:
            rejected += 1
            if len(reasons) < 3:
                reasons.append(f"span {index}: {error}")
    return Decoded(spans, rejected, _why(rejected, reasons))


def _zipkin_span(item) -> OtelSpan:
    if not isinstance(item, dict):
        raise ValueError("a span must be a JSON object")
    trace_id = _zipkin_hex(item.get("traceId"), (16, 32), "traceId").rjust(32, "0")
    span_id = _zipkin_hex(item.get("id"), (16,), "id")
    parent = item.get("parentId") or ""
    parent = _zipkin_hex(parent, (16,), "parentId") if parent else ""
    where = f"span {span_id} of trace {trace_id}"
    _check_ids(where, trace_id, span_id, parent)
    timestamp, duration = item.get("timestamp"), item.get("duration") or 0
    if not isinstance(timestamp, int) or not _whole(timestamp) or not _whole(duration):
        raise ValueError(f"{where}: timestamp and duration must be whole microseconds")
    start = timestamp * 1000
    end = start + duration * 1000
    _check_times(where, start, end)
    tags = item.get("tags") or {}
    if not isinstance(tags, dict):
        raise ValueError(f"{where}: tags must be an object")
    attributes = {text(str(key)): text(value if isinstance(value, str) else json.dumps(value))
                  for key, value in tags.items()}
    status_code, message = 0, ""
    if attributes.get("otel.status_code") == "OK":
        status_code = 1
    if "error" in attributes or attributes.get("otel.status_code") == "ERROR":
        status_code, message = ERROR, attributes.get("error", "")
    endpoint = item.get("localEndpoint") or {}
    service = endpoint.get("serviceName") if isinstance(endpoint, dict) else None
    service = text(service[:MAX_TEXT]) if isinstance(service, str) else ""
    events = [_zipkin_event(annotation) for annotation in item.get("annotations") or ()
              if isinstance(annotation, dict) and _whole(annotation.get("timestamp"))]
    name = text(str(item.get("name") or ""))
    return OtelSpan(trace_id, span_id, parent, name[:MAX_TEXT] or "(unnamed)",
                    ZIPKIN_KINDS.get(str(item.get("kind")), 0), start, end, status_code, message,
                    attributes, {"service.name": service} if service else {}, service, events,
                    [])


def _zipkin_event(annotation: dict) -> dict:
    """An annotation as an event. OpenTelemetry's Zipkin exporter writes an event with
    attributes as the JSON text {"<name>": {<attributes>}}."""
    value = text(str(annotation.get("value", "")))
    event: dict[str, Any] = {"name": value, "time": annotation["timestamp"] * 1000}
    if value.startswith("{"):
        try:
            document = json.loads(value)
        except ValueError:
            return event
        if isinstance(document, dict) and len(document) == 1:
            ((name, attributes),) = document.items()
            if isinstance(attributes, dict):
                event["name"] = name
                if attributes:
                    event["attributes"] = attributes
    return event


def _zipkin_hex(value, sizes, key) -> str:
    if not isinstance(value, str) or len(value) not in sizes:
        raise ValueError(f"{key} must be {' or '.join(map(str, sizes))} hex digits")
    try:
        binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        raise ValueError(f"{key} must be hex") from None
    return value.lower()


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- the tree -----------------------------------------------------------------------------------

def span_node(row: dict) -> dict:
    """A stored span (a dict of its columns, times as ints) as a node of the REST tree."""
    node = {
        "name": row["name"], "start": row["start"], "end": row["end"], "type": "SPAN",
        "service": row["service"], "span_id": row["span_id"],
        "parent_span_id": row["parent_span_id"] or None,
        "kind": KIND_NAMES[row["kind"]] if 0 <= row["kind"] < len(KIND_NAMES) else "unspecified",
        "status": {"code": STATUS_NAMES[row["status_code"]], "message": row["status_message"]},
        "attributes": row["attributes"] or {},
        "resource": row["resource"] or {},
        "events": row["events"] or [],
        "links": row["links"] or [],
    }
    return node


def tree(rows: list[dict], open_: bool) -> dict:
    """The trace's tree: each span under its parent (by parent span id), children by start
    time. Spans whose parent has not arrived (yet) go under a placeholder node for that parent
    ({"type": "SPAN", "placeholder": true, "span_id": ...}); a cycle in bad data is cut."""
    nodes: dict[str, dict] = {}
    for row in rows:
        nodes.setdefault(row["span_id"], span_node(row))
    top: list[dict] = []
    placeholders: dict[str, dict] = {}
    for node in nodes.values():
        parent_id = node["parent_span_id"]
        if parent_id is None or parent_id == node["span_id"]:
            top.append(node)
        elif parent_id in nodes:
            nodes[parent_id].setdefault("children", []).append(node)
        else:
            holder = placeholders.get(parent_id)
            if holder is None:
                holder = placeholders[parent_id] = {
                    "name": f"(span {parent_id} not received yet)", "type": "SPAN",
                    "placeholder": True, "span_id": parent_id, "parent_span_id": None,
                    "children": []}
                top.append(holder)
            holder["children"].append(node)
    for holder in placeholders.values():
        holder["start"] = min(child["start"] for child in holder["children"])
        holder["end"] = max(child["end"] for child in holder["children"])
    _cut_cycles(nodes, top)
    for node in [*nodes.values(), *placeholders.values()]:
        if "children" in node:
            node["children"].sort(key=_order)
    top.sort(key=_order)
    times = [t for node in nodes.values() for t in (node["start"], node["end"])]
    root = {"start": min(times) if times else None, "end": max(times) if times else None,
            "type": "TRACE", "children": top}
    if open_:
        root["open"] = True
    return root


def _order(node: dict):
    return (node["start"], node["name"], node["span_id"])


def _cut_cycles(nodes: dict, top: list) -> None:
    """Spans reachable from no top-level node sit on a cycle of parent ids: each cycle is cut
    at one of its spans, which becomes top-level."""
    seen: set[int] = set()
    stack = list(top)
    while True:
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.extend(node.get("children", ()))
        stranded = [node for node in nodes.values() if id(node) not in seen]
        if not stranded:
            return
        node = stranded[0]
        parent = nodes[node["parent_span_id"]]
        parent["children"].remove(node)
        if not parent["children"]:
            del parent["children"]
        top.append(node)
        stack.append(node)


def root_name(spans: list[OtelSpan]) -> tuple[str, str] | None:
    """(name, service) of the batch's root span (the earliest without a parent), if any."""
    roots = [span for span in spans if not span.parent_span_id]
    if not roots:
        return None
    root = min(roots, key=lambda span: (span.start, span.span_id))
    return root.name, root.service


def row_id(trace_id: str) -> int:
    """The integer id of the row of an OTLP or Zipkin trace: negative, so never the id of a
    trace of the trace websocket protocol (whose clients choose positive ones), and derived from
    the trace id so that a batch needs no look-up to name its traces' rows."""
    return -(int(trace_id[16:], 16) & (2**63 - 1) or 1)
