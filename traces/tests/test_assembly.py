import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traces.assembly import (
    COMPLETE,
    INCONSISTENT,
    OPEN,
    Conflict,
    SpanRecord,
    TraceBounds,
    assemble,
    merge_frame,
    missing_parts,
    open_root,
)
from traces.messages import EVENT, SPAN_END, SPAN_START, TRACE_END, TRACE_START, Message

pytestmark = pytest.mark.unit

README_MESSAGES = [
    Message(TRACE_START, 1569972082, "e6fa79ca-d142-4046-a134-5134f16a0b5e"),
    Message(SPAN_END, 1569972090, "dbed4e4e-8ec6-40dd-ae35-b118abf1ab69"),
    Message(SPAN_START, 1569972084, "1ff14a38-55ff-431a-a6ca-a86c82d8ed46", "movies_network_load"),
    Message(SPAN_END, 1569972090, "1ff14a38-55ff-431a-a6ca-a86c82d8ed46"),
    Message(EVENT, 1569972083, None, "movies_cache_content_rendered"),
    Message(SPAN_START, 1569972082, "dbed4e4e-8ec6-40dd-ae35-b118abf1ab69", "movies_load"),
    Message(TRACE_END, 1569972090, "e6fa79ca-d142-4046-a134-5134f16a0b5e"),
]
README_TREE = {"start": 1569972082, "end": 1569972090, "type": "TRACE", "children": [
    {"name": "movies_load", "start": 1569972082, "end": 1569972090, "type": "SPAN", "children": [
        {"name": "movies_cache_content_rendered", "timestamp": 1569972083, "type": "EVENT"},
        {"name": "movies_network_load", "start": 1569972084, "end": 1569972090, "type": "SPAN"}]}]}


def fold(frames):
    """What the ingest service does frame by frame, with a dict as the database."""
    bounds, spans, events = TraceBounds(), {}, []
    for frame in frames:
        names = {m.group_id for m in frame if m.type in (SPAN_START, SPAN_END)}
        changes = merge_frame(bounds, {g: spans[g] for g in names if g in spans}, frame)
        bounds = changes.bounds
        for span in changes.new_spans + changes.finished_spans:
            spans[span.group_id] = span
        events += changes.events
    return bounds, list(spans.values()), events


def assemble_frames(frames):
    return assemble(*fold(frames))


def test_readme_example_gives_the_contract_tree():
    result = assemble_frames([README_MESSAGES])
    assert result.status == COMPLETE and result.problems == []
    assert result.tree == README_TREE
    assert result.name == "movies_load"


def test_event_goes_under_the_latest_starting_span_that_contains_it():
    messages = [
        Message(TRACE_START, 82, "t"), Message(TRACE_END, 90, "t"),
        Message(SPAN_START, 82, "a", "A"), Message(SPAN_END, 86, "a"),
        Message(SPAN_START, 83, "c", "C"), Message(SPAN_END, 84, "c"),
        Message(SPAN_START, 86, "b", "B"), Message(SPAN_END, 90, "b"),
        Message(EVENT, 86, None, "e"),
    ]
    tree = assemble_frames([messages]).tree
    a, b = tree["children"]
    assert [a["name"], b["name"]] == ["A", "B"]
    assert [child["name"] for child in a["children"]] == ["C"]
    assert b["children"] == [{"name": "e", "timestamp": 86, "type": "EVENT"}]


def test_trace_end_before_trace_start_across_frames_completes():
    frames = [[Message(TRACE_END, 10, "t")], [Message(TRACE_START, 1, "t")]]
    result = assemble_frames(frames)
    assert result.status == COMPLETE
    assert result.tree == {"start": 1, "end": 10, "type": "TRACE", "children": []}


def test_span_after_trace_end_in_the_same_frame_is_kept():
    frame = [Message(TRACE_START, 1, "t"), Message(TRACE_END, 10, "t"),
             Message(SPAN_START, 2, "s", "late"), Message(SPAN_END, 3, "s")]
    assert assemble_frames([frame]).tree["children"][0]["name"] == "late"


def test_empty_trace_has_no_infinity():
    result = assemble_frames([[Message(TRACE_START, 5, "t"), Message(TRACE_END, 5, "t")]])
    assert result.status == COMPLETE
    assert "Infinity" not in json.dumps(result.tree)
    preview = assemble(TraceBounds(), [], [])
    assert preview.status == OPEN
    assert json.loads(json.dumps(preview.tree, allow_nan=False))["start"] is None


def test_open_trace_previews_and_says_what_is_missing():
    frame = [Message(TRACE_START, 1, "t"), Message(SPAN_START, 2, "s", "running"),
             Message(EVENT, 4, None, "tick")]
    bounds, spans, events = fold([frame])
    assert not bounds.ready and bounds.unfinished_spans == 1
    result = assemble(bounds, spans, events)
    assert result.status == OPEN
    span = result.tree["children"][0]
    assert span == {"name": "running", "start": 2, "end": 4, "type": "SPAN", "open": True,
                    "children": [{"name": "tick", "timestamp": 4, "type": "EVENT"}]}
    assert missing_parts(bounds) == ["TRACE_END", "the other half of 1 span(s)"]


@pytest.mark.parametrize("messages, reason", [
    ([Message(TRACE_START, 1, "t"), Message(TRACE_END, 9, "u")],
     "TRACE_START has group_id 't' but TRACE_END has 'u'"),
    ([Message(TRACE_START, 9, "t"), Message(TRACE_END, 1, "t")], "the trace ends at 1 before"),
    ([Message(TRACE_START, 1, "t"), Message(TRACE_END, 9, "t"), Message(SPAN_START, 5, "s", "x"),
      Message(SPAN_END, 4, "s")], "span 'x' (group_id 's') ends at 4 before it starts at 5"),
    ([Message(TRACE_START, 1, "t"), Message(TRACE_END, 9, "t"), Message(SPAN_START, 0, "s", "x"),
      Message(SPAN_END, 4, "s")], "span 'x' (group_id 's') [0, 4] is not inside the trace [1, 9]"),
    ([Message(TRACE_START, 1, "t"), Message(TRACE_END, 9, "t"), Message(EVENT, 9.5, None, "late")],
     "event 'late' at 9.5 is not inside the trace [1, 9]"),
])
def test_inconsistent_traces_say_why(messages, reason):
    result = assemble_frames([messages])
    assert result.status == INCONSISTENT
    assert any(reason in problem for problem in result.problems)
    json.dumps(result.tree, allow_nan=False)


def test_exact_repeats_are_ignored_and_conflicts_refused():
    first = [Message(TRACE_START, 1, "t"), Message(SPAN_START, 2, "s", "x")]
    bounds, spans, _ = fold([first])
    changes = merge_frame(bounds, {s.group_id: s for s in spans}, first)
    assert changes.repeats == 2 and changes.new_spans == [] and changes.finished_spans == []
    with pytest.raises(Conflict, match=r"message 0 \(SPAN_START\): span 's' was already started"):
        merge_frame(bounds, {s.group_id: s for s in spans}, [Message(SPAN_START, 3, "s", "x")])
    with pytest.raises(Conflict, match=r"message 1 \(TRACE_START\): the trace already has"):
        merge_frame(bounds, {}, [Message(EVENT, 1, None, "e"), Message(TRACE_START, 7, "t")])
    with pytest.raises(Conflict, match="already ended"):
        merge_frame(bounds, {}, [Message(SPAN_END, 3, "z"), Message(SPAN_END, 4, "z")])


# --- properties ---------------------------------------------------------------------------------

@st.composite
def consistent_traces(draw):
    """The messages of a consistent trace, in a canonical order."""
    use_floats = draw(st.booleans())

    def between(low, high):  # built, not filtered, so that Hypothesis wastes no examples
        if use_floats:
            return st.floats(low, high).map(lambda f: min(max(round(f, 3), low), high))
        return st.integers(low, high)

    start = draw(between(0, 1000))
    end = draw(between(start, 1000))
    inside = st.one_of(st.just(start), st.just(end), between(start, end))
    messages = [Message(TRACE_START, start, "trace"), Message(TRACE_END, end, "trace")]
    for index in range(draw(st.integers(0, 12))):
        a, b = sorted([draw(inside), draw(inside)])
        name = draw(st.sampled_from(["db", "http", "render", "cache"]))
        messages += [Message(SPAN_START, a, f"span-{index}", name), Message(SPAN_END, b, f"span-{index}")]
    for _ in range(draw(st.integers(0, 6))):
        messages.append(Message(EVENT, draw(inside), None, draw(st.sampled_from(["hit", "miss"]))))
    return messages


@st.composite
def shuffled_into_frames(draw, messages):
    shuffled = draw(st.permutations(messages))
    cuts = sorted(draw(st.lists(st.integers(0, len(shuffled)), max_size=5)))
    bounds = [0, *cuts, len(shuffled)]
    return [shuffled[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=150)
@given(st.data())
def test_any_order_and_any_split_gives_the_same_tree(data):
    messages = data.draw(consistent_traces())
    expected = assemble_frames([messages])
    assert expected.status == COMPLETE
    frames = data.draw(shuffled_into_frames(messages))
    result = assemble_frames(frames)
    assert result.status == COMPLETE
    assert result.tree == expected.tree
    json.dumps(result.tree, allow_nan=False)


def _walk(node, parent=None):
    yield node, parent
    for child in node.get("children", []):
        yield from _walk(child, node)


def _interval(node):
    if node["type"] == "EVENT":
        return node["timestamp"], node["timestamp"]
    return node["start"], node["end"]


def _order_key(node):
    start, end = _interval(node)
    return (start, -(end - start), node["type"] == "EVENT")


@settings(max_examples=150)
@given(consistent_traces())
def test_containment_ordering_and_latest_starting_parent(messages):
    tree = assemble_frames([messages]).tree
    nodes = list(_walk(tree))
    count = sum(1 for node, _ in nodes if node["type"] != "TRACE")
    assert count == len([m for m in messages if m.type in (SPAN_START, EVENT)])
    for node, parent in nodes:
        children = node.get("children", [])
        assert [_order_key(c) for c in children] == sorted(_order_key(c) for c in children)
        if parent is None:
            continue
        start, end = _interval(node)
        p_start, p_end = _interval(parent)
        assert p_start <= start and end <= p_end
        assert all(math.isfinite(t) for t in (start, end))
    # Reference rule, brute force: the parent is the latest-starting span that contains the
    # item among the spans that come before it in the order.
    flat = [node for node, _ in nodes if node["type"] != "TRACE"]
    ordered = sorted(flat, key=_order_key)  # stable: same order as the tree's
    parents = {id(node): parent for node, parent in nodes}
    for position, node in enumerate(ordered):
        start, end = _interval(node)
        containing = [s for s in ordered[:position] if s["type"] == "SPAN"
                      and s["start"] <= start and end <= s["end"]]
        expected = tree
        if containing:
            latest = max(s["start"] for s in containing)
            expected = [s for s in containing if s["start"] == latest][-1]
        assert _interval(parents[id(node)]) == _interval(expected)


def test_an_open_trace_takes_the_name_of_the_span_that_starts_first():
    leaf = SpanRecord("b", "movies_network_load", 1569972084, None)
    root = SpanRecord("a", "movies_load", 1569972082, None)
    assert open_root(None, [leaf]) == leaf
    assert open_root(leaf.start, [root]) == root
    assert open_root(root.start, [leaf._replace(end=1569972090)]) is None
    assert open_root(root.start, [SpanRecord("c", "same_start", 1569972082, 1569972083)]) is None
    assert open_root(None, [SpanRecord("d", None, 1, None)]) is None  # no name before SPAN_START
    # In one frame, on an equal start, the longer span is the parent; a span still open is longest.
    short, long = SpanRecord("s", "short", 5, 6), SpanRecord("l", "long", 5, 9)
    assert open_root(None, [short, long]) == long
    assert open_root(None, [long, SpanRecord("o", "open", 5, None)]).name == "open"


@settings(max_examples=150)
@given(st.data())
def test_the_open_name_frame_by_frame_is_the_completed_traces_name(data):
    messages = data.draw(consistent_traces())
    expected = assemble_frames([messages])
    bounds, spans, name, root_start = TraceBounds(), {}, "", None
    for frame in data.draw(shuffled_into_frames(messages)):
        names = {m.group_id for m in frame if m.type in (SPAN_START, SPAN_END)}
        changes = merge_frame(bounds, {g: spans[g] for g in names if g in spans}, frame)
        bounds = changes.bounds
        touched = changes.new_spans + changes.finished_spans
        for span in touched:
            spans[span.group_id] = span
        root = open_root(root_start if name else None, touched)
        if root is not None:
            name, root_start = root.name, root.start
    if not spans:
        assert name == expected.name == ""
        return
    first = min(span.start for span in spans.values())
    assert root_start == first
    if [span.start for span in spans.values()].count(first) == 1:
        assert name == expected.name
