import math

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.shortcuts import render


class BrowserOriginValidator(OriginValidator):
    """Refuse websockets opened by pages of other sites.

    Browsers always send Origin on a websocket handshake, so a foreign Origin is refused as
    channels' AllowedHostsOriginValidator does. Programs (trace clients, the trace websocket
    protocol's example websocket-client scripts in other languages) often send none; without a
    browser there is no cross-site risk, so a missing Origin is let through.
    """

    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def allowed_hosts_origin_validator(application):
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed_hosts)


def client_address(request) -> str | None:
    """The client's address as the ASGI server gives it (django-axes' AXES_CLIENT_IP_CALLABLE)."""
    return request.META.get("REMOTE_ADDR")


def login_locked_out(request, original_response=None, credentials=None):
    """django-axes' answer to a login from a locked-out account or address: the login page's
    layout, the reason in words, 429 with Retry-After."""
    minutes = max(1, math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    response = render(request, "registration/locked_out.html", {
        "failure_limit": settings.AXES_FAILURE_LIMIT, "minutes": minutes,
    }, status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response
