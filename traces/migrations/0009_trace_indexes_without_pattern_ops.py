"""The trace table's text columns keep their indexes and unique constraint, without the second,
varchar_pattern_ops index PostgreSQL got for each (Django adds one to every indexed or unique
CharField there, for LIKE 'prefix%'). No query makes such a LIKE; every new trace paid for four
more index entries. The indexes and the constraint keep their names: only Django's description
of them moves from the fields to Meta, and the database loses the four *_like indexes."""

from django.db import migrations, models

# The indexes Django made with the fields' db_index=True / unique=True on PostgreSQL.
LIKE_INDEXES = {
    "traces_trace_name_0af1d72e_like": "name",
    "traces_trace_service_a52667bd_like": "service",
    "traces_trace_status_f833142a_like": "status",
    "traces_trace_trace_id_f57b2925_like": "trace_id",
}


def drop_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in LIKE_INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def make_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, column in LIKE_INDEXES.items():
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "traces_trace" '
                              f'("{column}" varchar_pattern_ops)')


class Migration(migrations.Migration):

    dependencies = [
        ("traces", "0008_service_names"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="trace", name="status",
                    field=models.CharField(
                        choices=[("open", "open"), ("complete", "complete"),
                                 ("inconsistent", "inconsistent")],
                        default="open", max_length=12),
                ),
                migrations.AlterField(
                    model_name="trace", name="name",
                    field=models.CharField(blank=True, max_length=255),
                ),
                migrations.AlterField(
                    model_name="trace", name="service",
                    field=models.CharField(blank=True, max_length=255),
                ),
                migrations.AlterField(
                    model_name="trace", name="trace_id",
                    field=models.CharField(blank=True, max_length=32, null=True),
                ),
                migrations.AddIndex(
                    model_name="trace",
                    index=models.Index(fields=["status"], name="traces_trace_status_f833142a"),
                ),
                migrations.AddIndex(
                    model_name="trace",
                    index=models.Index(fields=["name"], name="traces_trace_name_0af1d72e"),
                ),
                migrations.AddIndex(
                    model_name="trace",
                    index=models.Index(fields=["service"], name="traces_trace_service_a52667bd"),
                ),
                migrations.AddConstraint(
                    model_name="trace",
                    constraint=models.UniqueConstraint(fields=["trace_id"],
                                                       name="traces_trace_trace_id_key"),
                ),
            ],
            database_operations=[migrations.RunPython(drop_like_indexes, make_like_indexes)],
        ),
    ]
