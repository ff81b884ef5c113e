"""`Authorization: Bearer <personal API token>` on the REST API, beside the session.

PersonalTokenAuthentication is first in REST_FRAMEWORK's DEFAULT_AUTHENTICATION_CLASSES, so every
API view that keeps the default classes takes it: all the reads, and the writes a logged-in user
may make through the API. The ingest views (machine reports, tracking batches, OTLP and Zipkin)
name their own classes and never see it: there `Bearer` stays a project token (or, for machine
reports, a machine token).

- No Bearer header: not this class's business (the session may authenticate; anonymous
  otherwise, answered 403 as before: this class adds no challenge to a request that presented
  no token).
- A Bearer token that is no personal token, or one revoked, expired, or of a deactivated user:
  401 with `WWW-Authenticate: Bearer error="invalid_token"` and a sentence saying which, never
  a silent fallback to anonymous (which could read public dashboards and hide the mistake).
- A read token on a write (POST, PUT, PATCH, DELETE): 403, error="insufficient_scope".
- Otherwise the request acts as the token's user (staff-only stays staff-only). No CSRF check:
  a token is no cookie, so a page of another site cannot make the browser send it.
"""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import SAFE_METHODS

from accounts.models import ApiToken
from plumbing.tokens import bearer_token, token_digest

# Writing last_used on every read would add a write per read; once a minute is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)
WHERE = "make one on /account/tokens/ or with manage.py create_api_token"


class InvalidPersonalToken(exceptions.APIException):
    """401 with a Bearer challenge (RFC 6750). Not DRF's AuthenticationFailed: APIView would turn
    that into a 403 for views whose first authentication class has no challenge, and give it
    that class's header."""

    status_code = 401
    default_code = "invalid_token"

    def __init__(self, detail: str, reason: str):
        super().__init__(detail)
        self.auth_header = (f'Bearer realm="api", error="invalid_token", '
                            f'error_description="{reason}"')


class ReadOnlyToken(exceptions.PermissionDenied):
    default_detail = ("This personal API token may only read (GET, HEAD, OPTIONS); writing "
                      f"needs a token with the read-write scope ({WHERE} --scope write).")
    default_code = "insufficient_scope"
    auth_header = 'Bearer realm="api", error="insufficient_scope", scope="write"'


def refused(secret: str, token: ApiToken | None) -> InvalidPersonalToken | None:
    """Why `token` (found by the digest of `secret`) may not be used, or None."""
    if token is None:
        if secret.startswith("rat_"):
            return InvalidPersonalToken(
                "This is a project token: it sends request metrics and spans, and reads nothing. "
                f"The API takes a personal API token as 'Authorization: Bearer <token>' ({WHERE}).",
                "project token, not a personal API token")
        if secret.startswith("tm_"):
            return InvalidPersonalToken(
                "This is a machine token: it sends test-machine reports, and reads nothing. "
                f"The API takes a personal API token as 'Authorization: Bearer <token>' ({WHERE}).",
                "machine token, not a personal API token")
        return InvalidPersonalToken(
            f"Unknown personal API token. Send one as 'Authorization: Bearer <token>' ({WHERE}).",
            "unknown token")
    shown = f"{token.prefix}…"
    if token.revoked is not None:
        return InvalidPersonalToken(
            f"The personal API token {shown} was revoked at {token.revoked:%Y-%m-%d %H:%M} UTC.",
            "revoked")
    if token.expires is not None and token.expires <= timezone.now():
        return InvalidPersonalToken(
            f"The personal API token {shown} expired at {token.expires:%Y-%m-%d %H:%M} UTC.",
            "expired")
    if not token.user.is_active:
        return InvalidPersonalToken(
            f"The user of the personal API token {shown} is deactivated.", "user deactivated")
    return None


class PersonalTokenAuthentication(BaseAuthentication):
    # A bad token is a 401 (plumbing.schema documents it on every view that takes tokens).
    refuses_with_401 = True

    def authenticate(self, request):
        secret = bearer_token(request)
        if secret is None:
            return None
        token = (ApiToken.objects.select_related("user")
                 .filter(digest=token_digest(secret)).first())
        problem = refused(secret, token)
        if problem is not None:
            raise problem
        if request.method not in SAFE_METHODS and not token.writes:
            raise ReadOnlyToken()
        now = timezone.now()
        if token.last_used is None or now - token.last_used > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used=now)
            token.last_used = now
        return token.user, token

    # No authenticate_header: a request without credentials keeps its 403 (the API's answer
    # since the session was its only way in); bad tokens carry their own challenge above.


class PersonalTokenScheme(OpenApiAuthenticationExtension):
    target_class = PersonalTokenAuthentication
    name = "personalToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "'Authorization: Bearer <personal API token>': acts as the user "
                               "who made it (/account/tokens/ or manage.py create_api_token). "
                               "A read token may GET; a read-write token may also write."}

