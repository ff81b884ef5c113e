"""The conditions that raise notifications. Each builds its message and key and calls
raise_notification(), which applies the cooldown per (rule, key)."""

from django.conf import settings

from notifications.models import Rule
from notifications.services import raise_notification


def server_error(request, error) -> None:
    path = getattr(request, "path", "?")
    method = getattr(request, "method", "?")
    kind = type(error).__name__ if error else "Error"
    raise_notification(
        Rule.SERVER_ERROR,
        key=f"{kind}:{method}:{path}",
        title=f"Server error: {kind} on {method} {path}",
        text=str(error)[:1000] if error else "",
        facts=[["Path", path], ["Method", method], ["Exception", kind]],
        link=f"{settings.SITE_URL}/admin/",
    )
