"""Live growth of OpenTelemetry traces: after a batch of spans is stored, each trace it touched
tells its open page (the trace's live group, trace_group) to fetch the new spans.

Kept apart from span_ingest's writes: `spans_stored` is called once after the write, and it
only hands frames to the publisher (after commit, coalesced per trace: a page hears at most one
frame per LIVE_MIN_INTERVAL and always the last one), never waiting for the channel layer.
"""

from plumbing import publisher
from traces.assembly import OPEN


def trace_group(trace_id: int) -> str:
    """Channel-layer group of one trace's live page (any trace: its row id)."""
    return f"traces.trace.{trace_id}"


def spans_stored(rows: dict[str, int], refused: set[str] = frozenset()) -> None:
    """`rows`: the batch's traces, 32-hex trace id -> row id; `refused`: trace ids whose spans
    were not stored. A trace that just received spans is open (its quiet period restarts)."""
    # In one hand-off to the event loop, not one each (32 wake-ups of the loop for a batch of
    # 32 traces).
    publisher.publish_many(
        (trace_group(row), {"event": "trace.updated", "id": row, "trace_id": hex_id,
                            "status": OPEN})
        for hex_id, row in rows.items() if hex_id not in refused)
