"""Messages of the trace websocket protocol's documented example, and small builders for tests."""

import json

from traces.assembly import generated_span_id

README_EXAMPLE = [
    {"timestamp": 1569972082, "type": "TRACE_START", "group_id": "e6fa79ca-d142-4046-a134-5134f16a0b5e"},
    {"timestamp": 1569972090, "type": "SPAN_END", "group_id": "dbed4e4e-8ec6-40dd-ae35-b118abf1ab69"},
    {"timestamp": 1569972084, "type": "SPAN_START", "group_id": "1ff14a38-55ff-431a-a6ca-a86c82d8ed46",
     "name": "movies_network_load"},
    {"timestamp": 1569972090, "type": "SPAN_END", "group_id": "1ff14a38-55ff-431a-a6ca-a86c82d8ed46"},
    {"timestamp": 1569972083, "type": "EVENT", "name": "movies_cache_content_rendered"},
    {"timestamp": 1569972082, "type": "SPAN_START", "group_id": "dbed4e4e-8ec6-40dd-ae35-b118abf1ab69",
     "name": "movies_load"},
    {"timestamp": 1569972090, "type": "TRACE_END", "group_id": "e6fa79ca-d142-4046-a134-5134f16a0b5e"},
]

README_TREE = {"start": 1569972082, "end": 1569972090, "type": "TRACE", "children": [
    {"name": "movies_load", "start": 1569972082, "end": 1569972090, "type": "SPAN", "children": [
        {"name": "movies_cache_content_rendered", "timestamp": 1569972083, "type": "EVENT"},
        {"name": "movies_network_load", "start": 1569972084, "end": 1569972090, "type": "SPAN"}]}]}

# The same tree as GET /api/trace/<id>/ gives it: span nodes carry OpenTelemetry's details (span
# ids generated from the group_id, the parent's span id by placement), events their attributes.
_LOAD = generated_span_id("dbed4e4e-8ec6-40dd-ae35-b118abf1ab69")
_UNSET = {"code": "unset", "message": ""}
README_TREE_REST = {"start": 1569972082, "end": 1569972090, "type": "TRACE", "children": [
    {"name": "movies_load", "start": 1569972082, "end": 1569972090, "type": "SPAN",
     "service": "", "span_id": _LOAD, "parent_span_id": None, "kind": "internal",
     "attributes": {}, "status": _UNSET, "children": [
        {"name": "movies_cache_content_rendered", "timestamp": 1569972083, "type": "EVENT",
         "attributes": {}},
        {"name": "movies_network_load", "start": 1569972084, "end": 1569972090, "type": "SPAN",
         "service": "", "span_id": generated_span_id("1ff14a38-55ff-431a-a6ca-a86c82d8ed46"),
         "parent_span_id": _LOAD, "kind": "internal", "attributes": {}, "status": _UNSET}]}]}

_DETAIL = ("span_id", "parent_span_id", "kind", "attributes", "status")


def protocol_tree(node: dict) -> dict:
    """A REST tree without OpenTelemetry's details: the trace websocket protocol's shape."""
    plain = {key: value for key, value in node.items() if key not in _DETAIL
             and not (key == "service" and value == "")}
    if "children" in node:
        plain["children"] = [protocol_tree(child) for child in node["children"]]
    return plain


STORED = {"message": "Trace stored. Closing the connection"}


def trace_start(ts, group="trace"):
    return {"type": "TRACE_START", "timestamp": ts, "group_id": group}


def trace_end(ts, group="trace"):
    return {"type": "TRACE_END", "timestamp": ts, "group_id": group}


def span(group, name, start, end):
    return [{"type": "SPAN_START", "timestamp": start, "group_id": group, "name": name},
            {"type": "SPAN_END", "timestamp": end, "group_id": group}]


def event(name, ts):
    return {"type": "EVENT", "timestamp": ts, "name": name}


def store_trace(trace_id, messages, publish=True):
    """Store `messages` as one frame of trace `trace_id`, as the ingest socket stores a frame;
    the IngestResult. A refused frame raises its IngestError."""
    from traces.services import ingest_frames  # a database test's helper; builders need no Django

    result, refused = ingest_frames(trace_id, [json.dumps(messages)], publish)
    if refused is not None:
        raise refused
    return result
