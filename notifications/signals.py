"""The server-error rule: an unhandled exception in a request of this server notifies."""

import logging

from django.core.signals import got_request_exception
from django.dispatch import receiver

logger = logging.getLogger(__name__)


@receiver(got_request_exception, dispatch_uid="notify-server-error")
def notify_server_error(sender, request=None, **kwargs):
    import sys

    from django.db import DatabaseError

    from notifications.rules import server_error

    error = sys.exc_info()[1]
    if isinstance(error, DatabaseError):
        # The outbox lives in that database: trying to write it would only make the failing
        # request wait for the pool's timeout too. The error is logged by Django as usual.
        return
    try:
        server_error(request, error)
    except Exception:  # the database may be the very thing that failed
        logger.warning("could not record a server-error notification", exc_info=True)
