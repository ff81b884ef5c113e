"""`Authorization: Bearer <personal API token>` on the handshake of a live page's websocket.

A program that follows a live page (a run's progress, a project's metrics) has no cookie; with
its user's token the socket is that user's, as a browser's is with the session. Any scope of
token will do: live sockets only read. A token that is refused (unknown, revoked, expired, of a
deactivated user, or a project or machine token) refuses the handshake with CLOSE_INVALID_TOKEN
before any consumer runs (a real client sees HTTP 403), never an anonymous socket. Without a
Bearer header nothing changes: the session's user, or anonymous.

Sits inside channels' AuthMiddlewareStack, so the token wins over a cookie that rides along,
as on the REST API. The trace websocket protocol's ingest sockets do not pass here.
"""

from channels.db import database_sync_to_async
from django.utils import timezone

from accounts.auth import LAST_USED_RESOLUTION, refused
from accounts.models import ApiToken
from plumbing.tokens import token_digest

CLOSE_INVALID_TOKEN = 4001


def _bearer(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


@database_sync_to_async
def _user_of(secret: str):
    token = ApiToken.objects.select_related("user").filter(digest=token_digest(secret)).first()
    if refused(secret, token) is not None:
        return None
    now = timezone.now()
    if token.last_used is None or now - token.last_used > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
    return token.user


class PersonalTokenWebsocket:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        secret = _bearer(scope) if scope["type"] == "websocket" else None
        if secret is None:
            return await self.inner(scope, receive, send)
        user = await _user_of(secret)
        if user is None:
            message = await receive()  # the handshake's websocket.connect
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": CLOSE_INVALID_TOKEN})
            return None
        return await self.inner({**scope, "user": user}, receive, send)
