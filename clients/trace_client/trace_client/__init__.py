"""Send traces to a Monitor server: `/ws/trace/<id>`, the trace websocket protocol.

    from trace_client import TraceClient

    client = TraceClient("ws://monitor.example.com:8000")
    with client.trace(name="GET /movies") as trace:      # TRACE_START; a root span "GET /movies"
        with trace.span("db.select movies"):            # SPAN_START ... SPAN_END
            trace.event("cache miss")                   # EVENT
    # leaving the block sends TRACE_END, then waits for "Trace stored."; TraceError otherwise

Messages are buffered and sent in frames of up to `batch_size`; nothing is sent from inside a
span unless the buffer is full, so tracing costs the traced code almost nothing. No Django needed.
"""

from trace_client.client import Span, Trace, TraceClient, TraceError, new_trace_id, send_trace

__all__ = ["Span", "Trace", "TraceClient", "TraceError", "new_trace_id", "send_trace"]
__version__ = "1.0.0"
