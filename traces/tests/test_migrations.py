"""Data migrations, run on rows written as the migration before them found them."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from plumbing.tests.migrating import migrate

pytestmark = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def migrated_to_the_latest_again():
    """The tests after these need every column: leave the database as migrations leave it."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_open_traces_are_renamed_after_their_root():
    apps = migrate(("traces", "0003_trace_root_start"))
    Trace, Span = apps.get_model("traces", "Trace"), apps.get_model("traces", "Span")
    # Named, before 0003, after the span that arrived first: a child.
    open_trace = Trace.objects.create(id=1, status="open", name="movies_network_load")
    Span.objects.create(trace=open_trace, group_id="b", name="movies_network_load",
                        start=Decimal(1569972084), end=Decimal(1569972090))
    Span.objects.create(trace=open_trace, group_id="a", name="movies_load",
                        start=Decimal(1569972082))
    Span.objects.create(trace=open_trace, group_id="c", name="", start=None,
                        end=Decimal(1569972089))  # only its SPAN_END so far: no name
    done = Trace.objects.create(id=2, status="complete", name="kept")
    Span.objects.create(trace=done, group_id="x", name="other", start=Decimal(0), end=Decimal(1))
    empty = Trace.objects.create(id=3, status="open", name="")

    apps = migrate(("traces", "0004_open_traces_named_after_their_root"))
    Trace = apps.get_model("traces", "Trace")
    renamed = Trace.objects.get(id=1)
    assert (renamed.name, renamed.root_start) == ("movies_load", Decimal(1569972082))
    assert Trace.objects.get(id=2).name == "kept"  # complete traces were named by assembly
    assert (Trace.objects.get(id=empty.id).name, Trace.objects.get(id=3).root_start) == ("", None)
