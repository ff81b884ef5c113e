from django.apps import AppConfig
from django.conf import settings
from django.db.backends.signals import connection_created


def _log_every_statement(sender, connection, **kwargs):
    # Django logs SQL only through its debug cursor, which it uses when DEBUG is on.
    connection.force_debug_cursor = True


class PlumbingConfig(AppConfig):
    """What every app shares and no domain owns: the ASGI limits and the lean ingest path, live
    delivery, the API's error shape, JSON, tokens, worker pools, the template tags of times and
    sorting. The code that relies on private parts of a library is in library_internals/."""

    name = "plumbing"
    verbose_name = "Plumbing"

    def ready(self):
        if settings.DEBUG_SQL_QUERY:
            connection_created.connect(_log_every_statement, dispatch_uid="debug-sql-query")
