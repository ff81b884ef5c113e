"""traces/otel.py: decoding and the tree of OpenTelemetry spans (no database)."""

import json

import pytest

from traces import otel

pytestmark = [pytest.mark.unit]


def row(span_id, parent="", start=0, end=10, name=None):
    return {"span_id": span_id, "parent_span_id": parent, "name": name or span_id,
            "service": "", "kind": 1, "start": start, "end": end, "status_code": 0,
            "status_message": "", "attributes": None, "resource": None, "events": None,
            "links": None}


def test_children_nest_by_parent_id_in_start_order_whatever_the_row_order():
    rows = [row("c", "a", 5, 6), row("b", "a", 1, 2), row("a", "", 0, 10), row("d", "b", 1, 2)]
    tree = otel.tree(rows, open_=False)
    (root,) = tree["children"]
    assert [child["span_id"] for child in root["children"]] == ["b", "c"]
    assert root["children"][0]["children"][0]["span_id"] == "d"
    assert (tree["start"], tree["end"]) == (0, 10) and "open" not in tree


def test_a_span_whose_parent_is_missing_is_under_a_placeholder():
    tree = otel.tree([row("c", "x", 3, 4), row("d", "x", 1, 2), row("a", "", 0, 10)], open_=True)
    assert tree["open"] is True
    root, holder = tree["children"]  # by start
    assert holder["placeholder"] is True and holder["span_id"] == "x"
    assert (holder["start"], holder["end"]) == (1, 4)
    assert [child["span_id"] for child in holder["children"]] == ["d", "c"]
    assert root["span_id"] == "a"


def test_a_cycle_of_parent_ids_is_cut():
    tree = otel.tree([row("a", "b", 0, 1), row("b", "a", 0, 2)], open_=False)
    assert len(tree["children"]) == 1
    top = tree["children"][0]
    assert len(top["children"]) == 1 and "children" not in top["children"][0]
    json.dumps(tree)  # no reference loop left


def test_row_ids_are_negative_and_stable():
    trace_id = "5b8efff798038103d269b633813fc60c"
    assert otel.row_id(trace_id) == otel.row_id(trace_id) < 0
    assert otel.row_id("1" * 16 + "0" * 16) == -1


def test_zipkin_annotations_of_the_otel_exporter_are_events_with_attributes():
    span = {"traceId": "a" * 32, "id": "b" * 16, "name": "x", "timestamp": 10, "duration": 5,
            "annotations": [{"timestamp": 12, "value": '{"cache miss": {"key": "m"}}'},
                            {"timestamp": 13, "value": "plain"}]}
    decoded = otel.decode_zipkin(json.dumps([span]).encode())
    assert decoded.spans[0].events == [
        {"name": "cache miss", "time": 12_000, "attributes": {"key": "m"}},
        {"name": "plain", "time": 13_000}]
    assert (decoded.spans[0].start, decoded.spans[0].end) == (10_000, 15_000)


def test_zipkin_spans_refused_one_by_one():
    good = {"traceId": "a" * 16, "id": "b" * 16, "name": "x", "timestamp": 10}
    decoded = otel.decode_zipkin(json.dumps([good, {"traceId": "zz", "id": "b" * 16},
                                             dict(good, timestamp=1.5)]).encode())
    assert len(decoded.spans) == 1 and decoded.rejected == 2
    assert "traceId must be 16 or 32 hex digits" in decoded.message
    assert decoded.spans[0].trace_id == "0" * 16 + "a" * 16


@pytest.mark.parametrize("body", [b"[", b"{}", b"\xff"])
def test_undecodable_zipkin_bodies(body):
    with pytest.raises(otel.InvalidData):
        otel.decode_zipkin(body)


def test_otlp_json_takes_names_and_numbers_for_enums_and_ints():
    document = {"resource_spans": [{"scope_spans": [{"spans": [
        {"trace_id": "a" * 32, "span_id": "b" * 16, "name": "x", "kind": "SPAN_KIND_CLIENT",
         "start_time_unix_nano": 5, "end_time_unix_nano": "7",
         "status": {"code": "STATUS_CODE_ERROR"}}]}]}]}
    (span,) = otel.decode_otlp_json(json.dumps(document).encode()).spans
    assert (span.kind, span.start, span.end, span.status_code) == (3, 5, 7, 2)


def test_text_the_database_cannot_store_is_replaced():
    body = ('[{"traceId": "' + "a" * 32 + '", "id": "' + "b" * 16 + '", "name": "x\\ud800\\u0000",'
            ' "timestamp": 5, "tags": {"k\\udc00": "\\u0000v"}, "localEndpoint": '
            '{"serviceName": "s\\u0000"}}]').encode()
    (span,) = otel.decode_zipkin(body).spans
    assert (span.name, span.service, span.attributes) == ("x?\ufffd", "s\ufffd", {"k?": "\ufffdv"})


def test_the_writers_json_text_takes_what_orjson_refuses_and_stores_no_nul():
    """plumbing.jsonio.database_json (the span and request writers' JSON): orjson's text, the
    standard library's where orjson refuses the value (deeper than its 254 levels, an integer
    past 64 bits); NUL never reaches PostgreSQL."""
    from plumbing.jsonio import database_json as _json_text

    deep: list = []
    for _ in range(300):
        deep = [deep]
    for value in (deep, {"big": 2**70}, {"a": [1, "é", None, True]}):
        assert json.loads(_json_text(value)) == value
    assert _json_text({"k": "a\x00b"}) == '{"k":"a\\ufffdb"}'
