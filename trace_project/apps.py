from django.apps import AppConfig
from django.conf import settings
from django.db.backends.signals import connection_created


def _log_every_statement(sender, connection, **kwargs):
    # Django logs SQL only through its debug cursor, which it uses when DEBUG is on.
    connection.force_debug_cursor = True


class ProjectConfig(AppConfig):
    """The project package is an app too: shared templates tags, checks and signal wiring."""

    name = "trace_project"
    verbose_name = "Monitor"

    def ready(self):
        if settings.DEBUG_SQL_QUERY:
            connection_created.connect(_log_every_statement, dispatch_uid="debug-sql-query")
