"""Test.machine and Test.master_scenario lose their own indexes (db_index=False): the composite
indexes (machine, file_name, status) and (master_scenario, status) lead with them.

Only the two indexes are dropped. AlterField would also drop and re-add each foreign key,
which checks every row of the table again under an exclusive lock; the constraints do not
change, so the database side is the two DROP INDEX statements (the names Django gave them, the
same on PostgreSQL and SQLite)."""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {"tm_api_test_machine_id_40484ea4": "machine_id",
           "tm_api_test_master_scenario_id_acd02371": "master_scenario_id"}


class Migration(migrations.Migration):

    dependencies = [
        ('tm_api', '0007_run_progress'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='test',
                    name='machine',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='tests', to='tm_api.machine'),
                ),
                migrations.AlterField(
                    model_name='test',
                    name='master_scenario',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='tests', to='tm_api.masterscenario'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{name}"',
                                  f'CREATE INDEX "{name}" ON "tm_api_test" ("{column}")')
                for name, column in INDEXES.items()
            ],
        ),
    ]
