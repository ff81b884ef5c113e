"""How machines prove who they are: `Authorization: Token <token>` (a MachineToken's secret).

Machines are programs: no session, no CSRF. With TM_ALLOW_ANONYMOUS_MACHINES (the default under
DEBUG) a request without the header is let through as existing test runners expect; a wrong token
is refused either way.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from plumbing.tokens import FoundByDigest, new_token, token_digest, token_hint
from tm_api.models import MachineToken

KEYWORDS = (b"token", b"bearer")
TOKEN_PREFIX = "tm_"
# Writing last_used on every request would add a write per report; once a minute is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def issue_token(name: str, machine=None) -> tuple[MachineToken, str]:
    """A new token; the secret is returned once and only its digest is stored."""
    secret = new_token(TOKEN_PREFIX)
    token = MachineToken.objects.create(
        name=name, machine=machine, digest=token_digest(secret), hint=token_hint(secret)
    )
    return token, secret


# Tokens found, by digest, each kept TM_TOKEN_CACHE_SECONDS (plumbing.tokens.FoundByDigest).
found_tokens = FoundByDigest(lambda: settings.TM_TOKEN_CACHE_SECONDS)


def _token_for(digest: str):
    return found_tokens.get(digest, lambda digest: MachineToken.objects.select_related(
        "machine").filter(digest=digest).first())


@receiver([post_save, post_delete], sender=MachineToken)
def _forget_token(sender, instance, **kwargs):
    found_tokens.forget(instance.pk)


class MachineTokenAuthentication(BaseAuthentication):
    # The write-rate bucket of requests authenticated here (plumbing.throttles).
    throttle_scope = "machine_token"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() not in KEYWORDS or len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Send the machine token as 'Authorization: Token <token>'."
            )
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The machine token is not ASCII.") from None
        token = _token_for(token_digest(secret))
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown machine token.")
        now = timezone.now()
        if token.last_used is None or now - token.last_used > LAST_USED_RESOLUTION:
            MachineToken.objects.filter(pk=token.pk).update(last_used=now)
            token.last_used = now
        return AnonymousUser(), token

    def authenticate_header(self, request):
        return 'Token realm="machines"'


class MachineWriter(BasePermission):
    message = (
        "This endpoint needs a machine token: 'Authorization: Token <token>' "
        "(python manage.py machine_token create <name>)."
    )

    def has_permission(self, request, view):
        return isinstance(request.auth, MachineToken) or settings.TM_ALLOW_ANONYMOUS_MACHINES


def check_token_allows(request, machine_name: str) -> None:
    token = request.auth
    if isinstance(token, MachineToken) and not token.allows(machine_name):
        raise exceptions.PermissionDenied(
            f"This token belongs to machine {token.machine.machine_name!r}, "
            f"not {machine_name!r}."
        )


class MachineTokenScheme(OpenApiAuthenticationExtension):
    target_class = MachineTokenAuthentication
    name = "machineToken"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "'Token <token>' (python manage.py machine_token create NAME)"}
