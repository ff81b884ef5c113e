from django.urls import include, path


def crash(request):
    raise ValueError("kaput")


def database_down(request):
    from django.db import OperationalError

    raise OperationalError("connection refused")


urlpatterns = [path("crash/", crash), path("crash/<str:anything>/", crash),
               path("db-down/", database_down),
               path("", include("trace_project.urls"))]
