"""Pages for people: server-rendered, live parts updated from the sockets by a small script."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.db.models import DurationField, ExpressionWrapper, F, Prefetch
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound
from rest_framework.exceptions import APIException

from plumbing.access import dashboard_page
from plumbing.sorting import Sorting
from tm_api import bodies, history, history_views
from tm_api import outcomes as O
from tm_api import status as S
from tm_api.models import Machine, MasterScenario, Quarantine, Run, Scenario, Test
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
    # The quarantined tests of the run shown (a later run's show after a reload).
    quarantined = list(Test.objects.filter(
        master_scenario__run_id=machine.last_run_id,
        identity_key__in=Quarantine.objects.values("identity_key")).values_list("pk", flat=True))
    return render(request, "tm/last_run.html", {
        "machine": machine, "body": bodies.machine_last_data(machine),
        "quarantined": quarantined,
    })


@dashboard_page
def run_detail(request, pk):
    run = get_object_or_404(Run.objects.select_related("machine", "master_scenario"), pk=pk)
    run.master_scenario.version = bodies.version(run.master_scenario)  # older frames ignored
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
    keys = Test.objects.filter(master_scenario=run.master_scenario).values("identity_key")
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
        "quarantined": set(Quarantine.objects.filter(identity_key__in=keys)
                           .values_list("identity_key", flat=True)),
        "ongoing": S.is_ongoing(run.master_scenario.tests_statistics),
    })


# --- tests across runs -------------------------------------------------------------------------

def _query_error(error) -> str:
    """The first message of a query's ValidationError / API refusal, for a page."""
    detail = getattr(error, "detail", error)
    if isinstance(detail, dict):
        detail = next(iter(detail.values()))
    if isinstance(detail, list):
        detail = detail[0]
    return str(detail)


def duration_trend(tests, width=600, height=80) -> dict | None:
    """An SVG polyline of the durations, oldest on the left (None with fewer than two)."""
    points = [(t.duration, t.status) for t in reversed(tests) if t.duration is not None]
    if len(points) < 2:
        return None
    longest = max(d for d, _ in points) or 1.0
    pad = 6  # room for the dots at both ends
    step = (width - 2 * pad) / (len(points) - 1)
    coords = [(round(pad + i * step, 1), round(height - pad - (height - 2 * pad) * d / longest, 1),
               d, st) for i, (d, st) in enumerate(points)]
    return {"width": width, "height": height, "longest": longest,
            "polyline": " ".join(f"{x},{y}" for x, y, _, _ in coords),
            "dots": [{"x": x, "y": y, "duration": d, "status": st} for x, y, d, st in coords]}


@dashboard_page
def test_history(request):
    query = history_views.HistoryQuery(data=request.GET)
    context = {"query": request.GET.get("name", ""), "error": None}
    status = 200
    if not query.is_valid():
        context["error"] = _query_error(query.errors)
        status = 400 if request.GET else 200
        if not request.GET:
            context["error"] = None
        return render(request, "tm/test_history.html", context, status=status)
    data = query.validated_data
    try:
        key, file_path, file_name = history_views.resolve_or_refuse(data)
    except APIException as error:  # NotFound or ValidationError of the query
        context["error"] = _query_error(error)
        return render(request, "tm/test_history.html", context, status=error.status_code)
    identity = O.identity(file_path, file_name)
    if data.get("test") is not None and not data.get("name"):
        return HttpResponseRedirect(f"{reverse('tm_api:test-history')}?"
                                    + urlencode({"name": identity}))
    tests = history.history(key, data["limit"], data.get("branch", ""), data.get("machine", ""))
    attach_trace_links(tests)  # each result's trace and tracked requests (the pytest plugin's)
    mark = history.quarantines_of([key]).get(key)
    body = history_views.history_body(file_path, file_name, tests, mark)
    context.update({
        "identity": identity, "body": body, "rows": list(zip(tests, body["results"])),
        "trend": duration_trend(tests),
        "quarantine": mark,
        "branch": data.get("branch", ""), "machine": data.get("machine", ""),
        "limit": data["limit"],
    })
    return render(request, "tm/test_history.html", context)


@dashboard_page
def flaky_tests(request):
    tests = history.flaky_tests()
    marks = history.quarantines_of([t.key for t in tests])
    rows = [{"test": t, "identity": O.identity(t.file_path, t.file_name),
             "quarantine": marks.get(t.key)} for t in tests]
    return render(request, "tm/flaky.html", {
        "rows": rows, "window": history_views.flaky_body([])["window"],
        "quarantines": Quarantine.objects.all()[:200],
    })


COMPARE_TITLES = {
    "newly_failing": "Newly failing", "fixed": "Fixed", "still_failing": "Still failing",
    "new": "New tests", "removed": "Removed tests",
    "duration_changes": "Biggest duration changes",
}


@dashboard_page
def compare_runs(request):
    query = history_views.CompareQuery(data=request.GET)
    if not query.is_valid():
        return render(request, "tm/compare.html", {"error": _query_error(query.errors)},
                      status=400)
    try:
        base, head = history_views.find_runs(query.validated_data)
    except APIException as error:
        return render(request, "tm/compare.html", {"error": _query_error(error)},
                      status=error.status_code)
    found = history.compare_runs(base, head)
    keys = {p.key for pairs in found.values() for p in pairs}
    marks = history.quarantines_of(keys)
    sections = [(name, COMPARE_TITLES[name], history_views.CATEGORY_HELP[name],
                 [{"pair": p, "identity": O.identity(p.file_path, p.file_name),
                   "quarantined": p.key in marks} for p in found[name]])
                for name in history_views.CATEGORY_HELP]
    # Other runs to compare the head with: its machine's and its branch's latest.
    others = Run.objects.select_related("machine").exclude(pk=head.pk).order_by("-timestamp", "-pk")
    choices = {run.pk: run for run in others.filter(machine_id=head.machine_id)[:20]}
    if head.branch:
        choices.update({run.pk: run for run in others.filter(branch=head.branch)[:20]})
    choices[base.pk] = base
    return render(request, "tm/compare.html", {
        "choices": sorted(choices.values(), key=lambda run: (run.timestamp, run.pk), reverse=True),
        "base": base, "head": head, "sections": sections,
        "compared": [("Base", base), ("Head", head)],
        "against": query.validated_data["against"],
    })


@require_POST
def quarantine(request):
    """Set or lift a test's quarantine from a page (logged in; the form's CSRF token)."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.POST.get("next") or reverse("tm_api:flaky"))
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        back = reverse("tm_api:flaky")
    form = history_views.QuarantineInput(data=request.POST)
    if not form.is_valid():
        messages.error(request, _query_error(form.errors))
        return HttpResponseRedirect(back)
    try:
        key, file_path, file_name = history_views.resolve_or_refuse(form.validated_data)
    except APIException as error:
        messages.error(request, _query_error(error))
        return HttpResponseRedirect(back)
    identity = O.identity(file_path, file_name)
    if request.POST.get("action") == "release":
        if history.release(key):
            messages.success(request, f"{identity} is out of quarantine.")
        else:
            messages.warning(request, f"{identity} was not quarantined.")
    else:
        history.quarantine(key, file_path, file_name, form.validated_data["reason"],
                           request.user)
        messages.success(request, f"{identity} is quarantined.")
    return HttpResponseRedirect(back)


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
