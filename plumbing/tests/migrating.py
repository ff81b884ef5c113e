"""Test helper: the database migrated to one migration, and the models as they were there."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(target):
    """Migrates the test database to `target` (app label, migration name); returns the apps
    registry of that state, whose models are as that migration left them."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps
