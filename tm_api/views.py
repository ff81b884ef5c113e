from django.shortcuts import render

from trace_project.access import dashboard_page


@dashboard_page
def index(request):
    return render(request, "tm_api/index.html")
