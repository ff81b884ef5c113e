"""plumbing.trace_links: finders registered by the apps, asked once per kind (and per chunk of
ids), links merged per trace id; ids that are not trace ids never reach a finder."""

from plumbing import trace_links
from plumbing.trace_links import Link

A, B = "a" * 32, "b" * 32


def test_find_merges_each_kinds_links_and_skips_what_is_no_trace_id(monkeypatch):
    calls = []

    def traces(ids, limit):
        calls.append(("trace", list(ids), limit))
        return {A: [Link("trace", "t", "/traces/a/")]}

    def requests(ids, limit):
        calls.append(("requests", list(ids), limit))
        held = {A: [Link("requests", "r", "/metrics/")], B: [Link("requests", "r2", "/m/")]}
        return {trace_id: held[trace_id] for trace_id in ids}

    monkeypatch.setattr(trace_links, "_finders", {"trace": traces, "requests": requests})
    found = trace_links.find([B, A, A, None, "", "0" * 32, "A" * 32, "xyz"], limit=3)
    assert found == {A: [Link("trace", "t", "/traces/a/"), Link("requests", "r", "/metrics/")],
                     B: [Link("requests", "r2", "/m/")]}
    assert calls == [("trace", [A, B], 3), ("requests", [A, B], 3)]
    calls.clear()
    assert trace_links.find([A], kinds=("requests", "unknown")) == {
        A: [Link("requests", "r", "/metrics/")]}
    assert [kind for kind, *_ in calls] == ["requests"]
    assert trace_links.find([None, "nope"]) == {} and len(calls) == 1  # no id: no query


def test_many_ids_are_asked_in_chunks(monkeypatch):
    sizes = []
    monkeypatch.setattr(trace_links, "_finders",
                        {"trace": lambda ids, limit: sizes.append(len(ids)) or {}})
    trace_links.find([format(n + 1, "032x") for n in range(2500)])
    assert sizes == [1000, 1000, 500]
