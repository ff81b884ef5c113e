"""Pages for people: server-rendered, live parts updated from the sockets by a small script."""

from django.http import Http404
from django.shortcuts import get_object_or_404, render

from trace_project.access import dashboard_page
from tm_api.models import Machine


@dashboard_page
def machine_list(request):
    return render(request, "tm/machine_list.html", {})


@dashboard_page
def machine_detail(request, pk):
    return render(request, "tm/machine.html", {"machine": get_object_or_404(Machine, pk=pk)})


@dashboard_page
def machine_last_run(request, pk):
    return render(request, "tm/last_run.html", {"machine": get_object_or_404(Machine, pk=pk)})


@dashboard_page
def run_detail(request, pk):
    raise Http404


@dashboard_page
def script(request, kind, pk):
    raise Http404
