"""Pages of traces: the filtered list and one trace's waterfall."""

from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render

from plumbing import trace_links
from plumbing.access import dashboard_page
from plumbing.sorting import Sorting
from traces import search, services, timeunits
from traces.forms import TraceFilterForm
from traces.models import Trace

PAGE_SIZE = 25
# "Started" is not sortable: each trace counts time in its own unit (seconds, nanoseconds...).
SORTING = Sorting({
    "id": "id", "name": "name", "service": "service", "status": "status", "spans": "span_count",
    "events": "event_count", "errors": "error_count", "duration": "duration", "received": "created",
}, default="-received")
# The scatter of durations over time plots at most this many of the matching traces (the newest).
SCATTER_POINTS = 500
# The parameters of the page that are not filters.
PAGE_PARAMS = {"page", "sort"}


def _point(trace: Trace) -> dict | None:
    """A trace on the list's scatter: x its start (its arrival where its clock is not Unix
    time), y its duration in seconds."""
    if trace.duration is None:
        return None
    start = trace.as_number(trace.start)
    at = timeunits.as_datetime(start) or trace.created
    return {"ref": str(trace.ref), "name": trace.name, "at": at.timestamp() * 1000,
            "seconds": float(trace.duration) / timeunits.units_per_second(start),
            "errors": trace.error_count, "status": trace.current_status,
            "duration": timeunits.human_duration(trace.duration, start)}


def _row(trace: Trace) -> dict:
    start = trace.as_number(trace.start)
    return {
        "trace": trace,
        "duration": timeunits.human_duration(trace.duration, start),
        "started_at": timeunits.as_datetime(start),
    }


@dashboard_page
def index(request):
    params = {key: value for key, value in request.GET.items() if key not in PAGE_PARAMS}
    form = TraceFilterForm(request.GET if params else None)
    invalid = form.is_bound and not form.is_valid()
    filters = {key: value for key, value in form.cleaned_data.items()
               if value not in (None, "")} if form.is_bound and not invalid else {}
    sort = SORTING.of(request.GET)
    # A filter that cannot be read shows no traces rather than all of them: a list that looks
    # filtered but is not would be read as the answer.
    traces = (Trace.objects.none() if invalid
              else search.search_traces(filters).order_by(*sort.order_by))
    page = Paginator(traces, PAGE_SIZE).get_page(request.GET.get("page"))
    newest = traces.order_by("-created", "-id").only(
        "id", "trace_id", "name", "start", "duration", "created", "updated", "error_count",
        "status", "root_start", "integer_timestamps")[:SCATTER_POINTS]
    points = [point for point in map(_point, newest) if point is not None]
    query = request.GET.copy()
    query.pop("page", None)
    unknown = sorted(set(params) - set(form.fields) - set(TraceFilterForm.ALIASES))
    return render(request, "traces/index.html", {
        "form": form,
        "page": page,
        "rows": [_row(trace) for trace in page.object_list],
        "query": query.urlencode(),
        "filtered": bool(filters),
        "invalid": invalid,
        "unknown": unknown,
        "sort": sort,
        "any_trace": Trace.objects.exists(),
        "points": points,
        "scatter_capped": len(newest) == SCATTER_POINTS,
    })


@dashboard_page
def detail(request, trace_id):
    trace = search.find_trace(trace_id)
    if trace is None:
        raise Http404(f"Trace {trace_id} does not exist.")
    related = []
    if trace.trace_id:  # what the other apps hold under it: requests, the test that ran it
        related = trace_links.find([trace.trace_id], kinds=("requests", "tests")).get(
            trace.trace_id, [])
    return render(request, "traces/detail.html", {
        **_row(trace),
        "related": related,
        "missing": services.missing_parts(trace),
        "units_per_second": timeunits.units_per_second(trace.as_number(trace.start)),
        "quiet_seconds": settings.TRACE_OTLP_QUIET_SECONDS,
    })
