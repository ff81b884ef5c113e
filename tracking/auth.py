"""How tracked applications prove which project they report for: the project's token.

Two ways, one authentication class each, so that the view, the rate throttle and the schema all
read the project from `request.auth` and the token is read once:

- ProjectTokenAuthentication: `Authorization: Bearer <token>`, this project's tracker
  (`POST /api/tracking/ingest/`);
- SeedProjectTokenAuthentication: the legacy tracker route (`POST /tracking/<project id>`), whose
  client sends the token in the JSON body (`project_token`) beside the project's id in the path.

Both give `(AnonymousUser(), project)`: a tracked application is no user of this site.
"""

import uuid

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from plumbing.tokens import bearer_token
from tracking import services
from tracking.models import Project

NO_BEARER_TOKEN = "Send the project token as 'Authorization: Bearer <token>'."


class UnknownProjectToken(exceptions.APIException):
    """A Bearer token no project has (any more): 403, as a credential that was presented and
    refused (DRF's AuthenticationFailed would be a 401 with a challenge)."""

    status_code = 403
    default_detail = "Unknown or rotated project token."
    default_code = "authentication_failed"


class WrongProjectToken(exceptions.PermissionDenied):
    default_detail = "Wrong project_token for this project."
    default_code = "permission_denied"


class ProjectTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>`. No Bearer token: not authenticated (ProjectTokenRequired
    answers 401); a token no project has: 403."""

    # The write-rate bucket of requests authenticated here (plumbing.throttles).
    throttle_scope = "project_token"

    # The Bearer token of the request, None without one (the OTLP/HTTP endpoint reads it too).
    presented_token = staticmethod(bearer_token)

    def authenticate(self, request):
        token = self.presented_token(request)
        if token is None:
            return None
        project = services.project_for_token(token)
        if project is None:
            raise UnknownProjectToken()
        return AnonymousUser(), project

    def authenticate_header(self, request):
        return 'Bearer realm="projects"'


class ProjectTokenRequired(BasePermission):
    def has_permission(self, request, view):
        if not isinstance(request.auth, Project):
            raise exceptions.NotAuthenticated(NO_BEARER_TOKEN)
        return True


class SeedProjectTokenAuthentication(BaseAuthentication):
    """The legacy tracker route: `project_token` in the JSON body, the project's id in the path.
    A body without a token is not authenticated (the view answers 401 as it checks the body);
    an unknown project is 404, a token of another project 403."""

    throttle_scope = "project_token"

    def authenticate(self, request):
        data = request.data  # a malformed body raises the view's own 400 here
        token = data.get("project_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            return None
        project_id = request.parser_context["kwargs"].get("project_id")
        try:
            project = Project.objects.filter(public_id=uuid.UUID(project_id)).first()
        except (TypeError, ValueError):
            project = None
        if project is None:
            raise exceptions.NotFound("No such project.")
        if not project.token_matches(token):
            raise WrongProjectToken()
        return AnonymousUser(), project


class ProjectTokenScheme(OpenApiAuthenticationExtension):
    target_class = ProjectTokenAuthentication
    name = "projectToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "'Authorization: Bearer <project token>' (shown once when the "
                               "project is created: python manage.py create_project NAME)."}


class SeedProjectTokenScheme(OpenApiAuthenticationExtension):
    """The token travels in the body, which the request schema documents: no security scheme."""

    target_class = SeedProjectTokenAuthentication
    name = []  # no scheme of its own

    def get_security_requirement(self, auto_schema):
        return []

    def get_security_definition(self, auto_schema):
        return []
