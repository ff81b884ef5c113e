"""The traces' part of the home page's overview: the latest traces with a span in error."""

from django.urls import reverse

from traces.models import Trace


def recent_error_traces(limit: int = 10) -> dict:
    failing = Trace.objects.filter(error_count__gt=0)
    rows = failing.order_by("-updated", "-id").only(
        "id", "trace_id", "name", "service", "error_count", "span_count", "updated")[:limit]
    items = [{
        "trace": trace.trace_id or str(trace.id),
        "name": trace.name,
        "service": trace.service,
        "errors": trace.error_count,
        "spans": trace.span_count,
        "updated": trace.updated,
        "url": reverse("traces:detail", args=[trace.trace_id or trace.id]),
    } for trace in rows]
    return {"count": failing.count(), "items": items}
