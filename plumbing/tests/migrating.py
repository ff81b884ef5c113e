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


def migrate_to_latest():
    """Every app's last migration: what the tests after a migration test need (it leaves the
    database where it migrated it)."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
