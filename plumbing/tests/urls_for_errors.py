from django.urls import include, path
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny


class Nested(serializers.Serializer):
    name = serializers.CharField()


class Payload(serializers.Serializer):
    status = serializers.ChoiceField(choices=["passed", "failed"])
    items = Nested(many=True)


@api_view(["POST"])
@permission_classes([AllowAny])
def validate(request):
    Payload(data=request.data).is_valid(raise_exception=True)


@api_view(["GET"])
@permission_classes([AllowAny])
def missing(request):
    raise NotFound("No trace 7.")


@api_view(["GET"])
@permission_classes([AllowAny])
def django_404(request):
    from django.http import Http404

    raise Http404("No machine 3.")


@api_view(["GET"])
@permission_classes([AllowAny])
def crash(request):
    raise RuntimeError("boom")


def crash_page(request):
    raise RuntimeError("boom")


def forbidden_page(request):
    from django.core.exceptions import PermissionDenied

    raise PermissionDenied("not for you")


def suspicious_page(request):
    from django.core.exceptions import SuspiciousOperation

    raise SuspiciousOperation("odd")


urlpatterns = [
    path("test/crash-page/", crash_page),
    path("test/forbidden-page/", forbidden_page),
    path("test/suspicious-page/", suspicious_page),
    path("api/test/validate/", validate),
    path("api/test/missing/", missing),
    path("api/test/crash/", crash),
    path("api/test/django-404/", django_404),
    path("api/test/protected/", api_view(["GET"])(lambda request: None)),
    path("", include("trace_project.urls")),
]

from trace_project.urls import handler400, handler403, handler404, handler500  # noqa: E402,F401 (the error pages Django looks up in ROOT_URLCONF)
