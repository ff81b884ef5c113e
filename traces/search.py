"""Which stored traces a list shows: the trace API's and the trace page's filters."""

from django.db.models import Exists, OuterRef, Q, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from traces import span_ingest
from traces.assembly import COMPLETE, OPEN
from traces.models import Service, Span, Trace


def search_traces(filters: dict, traces=None):
    """Traces matching TraceFilterForm's cleaned data, newest first."""
    traces = Trace.objects.all() if traces is None else traces
    for name in (filters.get("name"), filters.get("operation")):
        if name:
            traces = traces.filter(Exists(Span.objects.filter(trace_id=OuterRef("pk"), name=name)))
    if filters.get("service"):
        # A trace's service is its root's (or TRACE_START's); a trace of OTLP spans many.
        traces = traces.filter(Q(service=filters["service"]) | Exists(
            Span.objects.filter(trace_id=OuterRef("pk"), service=filters["service"])))
    if filters.get("project"):
        traces = traces.filter(project=filters["project"])
    if filters.get("error") is not None:
        traces = (traces.filter(error_count__gt=0) if filters["error"]
                  else traces.filter(error_count=0))
    for key, value in filters.get("attributes") or ():
        traces = traces.filter(Exists(
            Span.objects.filter(trace_id=OuterRef("pk"))
            .alias(value=Cast(KeyTextTransform(key, "attributes"), TextField()))
            .filter(value=value)))
    if filters.get("status") == COMPLETE:
        # OTLP traces whose quiet period has passed are complete, though their row says open.
        traces = traces.filter(Q(status=COMPLETE) | span_ingest.now_complete())
    elif filters.get("status") == OPEN:
        traces = traces.filter(status=OPEN).exclude(span_ingest.now_complete())
    elif filters.get("status"):
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


def attribute_filters(params: list[str]) -> list[tuple[str, str]]:
    """`attribute=key:value` parameters -> [(key, value)]; ValueError naming a bad one."""
    pairs = []
    for param in params:
        key, colon, value = param.partition(":")
        if not colon or not key or len(key) > 255 or "\x00" in param:
            raise ValueError(f"expected key:value, got {param[:80]!r}")
        pairs.append((key, value))
    return pairs


def find_trace(ref: int | str) -> Trace | None:
    """A trace by its integer id or its 32-hex trace id (traces.urls.TraceRef)."""
    if isinstance(ref, str):
        return Trace.objects.filter(trace_id=ref).first()
    return Trace.objects.filter(pk=ref).first()


def known_services() -> list[str]:
    """Every service a stored span names, sorted: the list page's service picker
    (traces.service_names keeps them as the spans are stored)."""
    return list(Service.objects.order_by("name").values_list("name", flat=True))
