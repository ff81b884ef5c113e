"""On PostgreSQL, spans are partitioned by time (plumbing/partitions.py), so that retention drops
whole days of spans: the table is converted keeping its rows (they stay in the partition of
everything before the conversion). Each span's `received` becomes its trace's `created`, as every
writer now sets it, so a trace's spans share a partition and leave with their trace. The foreign
key constraints of spans and events to their trace go (see Span.trace, Event.trace). SQLite keeps its plain table."""

import django.db.models.deletion
from django.db import migrations, models

from plumbing.partitions import partition_table


def received_when_their_trace_was(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute('UPDATE "traces_span" AS s SET "received" = t."created" '
                       'FROM "traces_trace" AS t '
                       'WHERE t."id" = s."trace_id" AND s."received" <> t."created"')


class Migration(migrations.Migration):

    dependencies = [
        ('traces', '0005_opentelemetry_spans'),
    ]

    operations = [
        migrations.AlterField(
            model_name='span',
            name='trace',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='spans', to='traces.trace'),
        ),
        migrations.AlterField(
            model_name='event',
            name='trace',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='events', to='traces.trace'),
        ),
        migrations.RunPython(received_when_their_trace_was, migrations.RunPython.noop),
        partition_table("traces_span", "received"),
    ]
