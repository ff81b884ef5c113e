"""RequestSpan.project loses its own index (db_index=False): the unique constraint's index
(project, trace_id, span_id) leads with it. Only the index is dropped (AlterField would also
drop and re-add the foreign key, re-checking every row); its name is Django's, the same on
PostgreSQL and SQLite."""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "tracking_requestspan_project_id_a1513ffc"


class Migration(migrations.Migration):

    dependencies = [
        ("tracking", "0004_request_trace_context"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="requestspan",
                    name="project",
                    field=models.ForeignKey(db_index=False,
                                            on_delete=django.db.models.deletion.CASCADE,
                                            related_name="+", to="tracking.project"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{INDEX}"',
                                  f'CREATE INDEX "{INDEX}" ON "tracking_requestspan" '
                                  '("project_id")'),
            ],
        ),
    ]
