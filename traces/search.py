"""Which stored traces a list shows: the trace API's and the trace page's filters."""

from django.db.models import Exists, OuterRef

from traces.models import Span, Trace


def search_traces(filters: dict, traces=None):
    """Traces matching TraceFilterForm's cleaned data, newest first."""
    traces = Trace.objects.all() if traces is None else traces
    if filters.get("name"):
        traces = traces.filter(
            Exists(Span.objects.filter(trace_id=OuterRef("pk"), name=filters["name"]))
        )
    if filters.get("service"):
        traces = traces.filter(service=filters["service"])
    if filters.get("status"):
        traces = traces.filter(status=filters["status"])
    if filters.get("min_duration") is not None:
        traces = traces.filter(duration__gte=filters["min_duration"])
    if filters.get("max_duration") is not None:
        traces = traces.filter(duration__lte=filters["max_duration"])
    if filters.get("since"):
        traces = traces.filter(created__gte=filters["since"])
    if filters.get("until"):
        traces = traces.filter(created__lt=filters["until"])
    return traces.order_by("-created", "-id")
