from django.db import migrations
from django.db.models import F


def name_open_traces_after_their_root(apps, schema_editor):
    """Traces still open when 0003 came have no root_start, and were named after the first span
    that arrived: name them after their root, as ingest now does (traces.assembly.open_root)."""
    Trace = apps.get_model("traces", "Trace")
    Span = apps.get_model("traces", "Span")
    for trace in Trace.objects.filter(status="open", root_start__isnull=True).iterator():
        root = (Span.objects.filter(trace_id=trace.pk, start__isnull=False).exclude(name="")
                .order_by("start", F("end").desc(nulls_first=True), "name").first())
        if root is not None:
            Trace.objects.filter(pk=trace.pk).update(name=root.name, root_start=root.start)


class Migration(migrations.Migration):

    dependencies = [
        ("traces", "0003_trace_root_start"),
    ]

    operations = [
        migrations.RunPython(name_open_traces_after_their_root, migrations.RunPython.noop),
    ]
