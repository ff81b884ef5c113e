"""Pages for people: server-rendered, live parts updated from the sockets by a small script."""

from django.core.paginator import Paginator
from django.db.models import DurationField, ExpressionWrapper, F, Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.html import format_html
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

from plumbing.access import dashboard_page
from plumbing.sorting import Sorting
from tm_api import bodies
from tm_api.models import Machine, MasterScenario, Run, Scenario, Test
from tm_api.status import preview
from tm_api.trace_links import attach_trace_links
from tm_api.views import machine_status_body, machines_with_last_run, runs_of

PAGE_SIZES = (10, 25, 50, 100)
SCRIPT_KINDS = {"test": Test, "scenario": Scenario, "master": MasterScenario}


MACHINE_SORTING = Sorting({
    "machine": "machine_name", "status": "last_run__master_scenario__status",
    "last_run": "last_run__timestamp",
}, default="machine")
# Sorted otherwise than by position, a run's tests are one flat list across its scenarios (to
# find the slowest or the failed ones), each saying its scenario.
TEST_SORTING = Sorting({
    "position": "position", "test": "file_name", "scenario": "scenario__position",
    "status": "status", "started": "timestamp_start", "duration": "run_time",
}, default="position")


def _page(request, queryset):
    """The page of `queryset` asked for, its size, and what is wrong with ?page_size= if it is."""
    value = request.GET.get("page_size", "")
    size = int(value) if value.strip().isdigit() else None
    error = None
    if size not in PAGE_SIZES:
        if value:
            error = (f"{preview(value)} is not a page size; showing {PAGE_SIZES[0]} per page "
                     f"(one of {', '.join(map(str, PAGE_SIZES))}).")
        size = PAGE_SIZES[0]
    return Paginator(queryset, size).get_page(request.GET.get("page")), size, error


@dashboard_page
def machine_list(request):
    sort = MACHINE_SORTING.of(request.GET)
    page, size, size_error = _page(request, machines_with_last_run().order_by(*sort.order_by))
    rows = [machine_status_body(machine) for machine in page]
    return render(request, "tm/machine_list.html", {
        "page": page, "rows": rows, "page_size": size, "page_sizes": PAGE_SIZES,
        "page_size_error": size_error, "sort": sort,
    })


@dashboard_page
def machine_detail(request, pk):
    machine = get_object_or_404(Machine.objects.select_related("last_run__master_scenario"), pk=pk)
    page, size, size_error = _page(request, runs_of(pk))
    page.object_list = list(page.object_list)
    for master in page.object_list:
        master.version = bodies.version(master)  # rows ignore older live frames
    return render(request, "tm/machine.html", {
        "machine": machine, "status": machine_status_body(machine), "page": page,
        "page_size": size, "page_sizes": PAGE_SIZES, "page_size_error": size_error,
    })


@dashboard_page
def machine_last_run(request, pk):
    machine = get_object_or_404(Machine, pk=pk)
    return render(request, "tm/last_run.html", {
        "machine": machine, "body": bodies.machine_last_data(machine),
    })


@dashboard_page
def run_detail(request, pk):
    run = get_object_or_404(Run.objects.select_related("machine", "master_scenario"), pk=pk)
    scenarios = Scenario.objects.filter(master_scenario=run.master_scenario).prefetch_related(
        Prefetch("tests", queryset=Test.objects.select_related("result").order_by("position"))
    )
    sort = TEST_SORTING.of(request.GET)
    tests = None
    if sort.param != TEST_SORTING.default.param:
        tests = (Test.objects.filter(master_scenario=run.master_scenario)
                 .select_related("scenario", "result")
                 .annotate(run_time=ExpressionWrapper(F("timestamp_stop") - F("timestamp_start"),
                                                      output_field=DurationField()))
                 .order_by(*sort.order_by))
    # The page's tests, evaluated here so that each carries its trace links (one query per
    # kind of link for the whole page).
    if tests is None:
        scenarios = list(scenarios)
        attach_trace_links([test for scenario in scenarios for test in scenario.tests.all()])
    else:
        tests = list(tests)
        attach_trace_links(tests)
    return render(request, "tm/run.html", {
        "run": run, "master": run.master_scenario, "scenarios": scenarios, "tests": tests,
        "sort": sort, "is_last": run.machine.last_run_id == run.pk,
    })


@dashboard_page
def script(request, kind, pk):
    """The script of a test, scenario or master scenario as highlighted HTML (for the modal)."""
    model = SCRIPT_KINDS.get(kind)
    if model is None:
        raise Http404
    row = get_object_or_404(model, pk=pk)
    if not row.script.strip():
        return HttpResponse(format_html('<p class="tm-empty">{} was sent without a script.</p>',
                                        row.file_name))
    try:
        lexer = get_lexer_for_filename(row.file_name, stripnl=False)
    except ClassNotFound:
        lexer = PythonLexer(stripnl=False) if not row.file_name else TextLexer(stripnl=False)
    html = highlight(row.script, lexer, HtmlFormatter(linenos="inline", wrapcode=True))
    return HttpResponse(html)
