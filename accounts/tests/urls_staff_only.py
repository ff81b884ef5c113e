"""The project's URLs and one staff-only API view: a token acts as its user, so a staff-only
API stays staff-only (no such view exists in the project yet; this one stands for them)."""

from django.urls import path
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from trace_project.urls import handler400, handler403, handler404, handler500  # noqa: F401
from trace_project.urls import urlpatterns as project_urls


class StaffOnly(APIView):
    permission_classes = [IsAdminUser]

    def get(self, request):
        return Response({"user": request.user.get_username()})


urlpatterns = [path("api/test/staff-only/", StaffOnly.as_view()), *project_urls]
