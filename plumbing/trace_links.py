"""What this project holds under one W3C trace id, gathered from the apps that hold it.

A trace id (32 lowercase hex digits) ties together a trace (traces), the requests served in it
(tracking: the tracker read it from `traceparent` or the app's OpenTelemetry span) and the test
that made them (tm_api: the pytest plugin starts a trace per test). No domain app imports
another (docs/apps.md): each registers, when its app is ready, a finder of what it holds, and a
page asks here for the links of the trace ids it shows:

    @trace_links.finder("requests")
    def requests_of(trace_ids: list[str], limit: int) -> dict[str, list[Link]]:
        ...   # one query for all ids, at most `limit` links per id

    trace_links.find(["4bf92f3577b34da6a3ce929d0e0e4736"], kinds=("trace",))
    -> {"4bf9...": [Link("trace", "GET /cart (3 spans)", "/traces/4bf9.../")]}

So a page costs one query per kind of thing linked, however many rows it shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

HEX = frozenset("0123456789abcdef")
CHUNK = 1000  # trace ids per finder call


@dataclass(frozen=True)
class Link:
    kind: str  # the finder's kind: "trace", "requests", "tests"
    label: str
    url: str
    title: str = ""  # a longer description, for the link's tooltip
    more: int = 0  # links of this kind left out past the limit (shown as "and N more")


Finder = Callable[[list[str], int], dict[str, list[Link]]]
_finders: dict[str, Finder] = {}


def finder(kind: str) -> Callable[[Finder], Finder]:
    """Register what an app holds under trace ids (see the module's docstring)."""

    def register(function: Finder) -> Finder:
        _finders[kind] = function
        return function

    return register


def is_trace_id(value) -> bool:
    return (isinstance(value, str) and len(value) == 32 and HEX.issuperset(value)
            and value != "0" * 32)


def find(trace_ids: Iterable, kinds: Iterable[str] | None = None,
         limit: int = 10) -> dict[str, list[Link]]:
    """{trace id: its links}, for the ids that have any; `kinds` None asks every finder."""
    ids = sorted({value for value in trace_ids if is_trace_id(value)})
    found: dict[str, list[Link]] = {}
    if not ids:
        return found
    for kind in (_finders if kinds is None else kinds):
        function = _finders.get(kind)
        if function is None:
            continue
        # A page of a few hundred rows is one query; a run of thousands of tests a few (SQLite
        # takes at most 32,766 parameters in one statement).
        for start in range(0, len(ids), CHUNK):
            for trace_id, links in function(ids[start:start + CHUNK], limit).items():
                found.setdefault(trace_id, []).extend(links)
    return found
