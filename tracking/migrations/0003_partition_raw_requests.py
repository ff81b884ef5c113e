"""On PostgreSQL, raw request rows are partitioned by the time the request was received
(plumbing/partitions.py): retention drops whole days. The rows stored so far stay where they are,
in the partition of everything before the conversion. SQLite keeps its plain table."""

from django.db import migrations

from plumbing.partitions import partition_table


class Migration(migrations.Migration):

    dependencies = [
        ("tracking", "0002_day_and_series_rollups"),
    ]

    operations = [
        partition_table("tracking_requestmetric", "received_at"),
    ]
