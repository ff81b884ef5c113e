from channels.security.websocket import OriginValidator
from django.conf import settings


class BrowserOriginValidator(OriginValidator):
    """Refuse websockets opened by pages of other sites.

    Browsers always send Origin on a websocket handshake, so a foreign Origin is refused as
    channels' AllowedHostsOriginValidator does. Programs (trace clients, the seed's
    websocket-client scripts in other languages) often send none; without a browser there is no
    cross-site risk, so a missing Origin is let through.
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
