from django.urls import include, path


def crash(request):
    raise ValueError("kaput")


urlpatterns = [path("crash/", crash), path("", include("trace_project.urls"))]
