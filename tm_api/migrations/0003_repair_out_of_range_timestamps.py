"""Repair dates stored before machines' timestamps were checked at the door (1970 to 2199).

A machine could store year 1 ("0001-01-01T00:00:00+14:00"); afterwards every page and list
showing that machine failed, since Python cannot even read such a date back from PostgreSQL.
UPDATEs only (no row is read into Python): a run's out-of-range time becomes the time it was
received; a test's or scenario's out-of-range start or stop becomes unknown (null).
"""

from datetime import datetime, UTC

from django.db import migrations
from django.db.models import F, Q

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def out_of_range(field):
    return Q(**{f"{field}__lt": EARLIEST}) | Q(**{f"{field}__gte": LATEST})


def repair(apps, schema_editor):
    Run = apps.get_model("tm_api", "Run")
    Run.objects.filter(out_of_range("timestamp")).update(timestamp=F("received"))
    for name in ("MasterScenario", "Scenario", "Test"):
        model = apps.get_model("tm_api", name)
        for field in ("timestamp_start", "timestamp_stop"):
            model.objects.filter(out_of_range(field)).update(**{field: None})


class Migration(migrations.Migration):
    dependencies = [("tm_api", "0002_master_scenario_last_report")]
    operations = [migrations.RunPython(repair, migrations.RunPython.noop)]
