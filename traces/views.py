"""Pages of traces: the filtered list and one trace's waterfall."""

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render

from trace_project.access import dashboard_page
from traces import services, timeunits
from traces.forms import TraceFilterForm
from traces.models import Trace

PAGE_SIZE = 25


def _row(trace: Trace) -> dict:
    start = trace.as_number(trace.start)
    return {
        "trace": trace,
        "duration": timeunits.human_duration(trace.duration, start),
        "started_at": timeunits.as_datetime(start),
    }


@dashboard_page
def index(request):
    form = TraceFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    traces = services.search_traces(filters) if not form.errors else Trace.objects.none()
    page = Paginator(traces, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "traces/index.html", {
        "form": form,
        "page": page,
        "rows": [_row(trace) for trace in page.object_list],
        "query": query.urlencode(),
        "filtered": bool(filters),
        "any_trace": Trace.objects.exists(),
    })


@dashboard_page
def detail(request, trace_id):
    trace = get_object_or_404(Trace, pk=trace_id)
    return render(request, "traces/detail.html", {
        **_row(trace),
        "missing": services.missing_parts(trace),
        "units_per_second": timeunits.units_per_second(trace.as_number(trace.start)),
    })
