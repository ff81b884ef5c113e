"""Data migrations, run on rows written as the migration before them found them."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
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


@pytest.mark.django_db(transaction=True)
def test_spans_are_partitioned_keeping_their_rows():
    """0006: on PostgreSQL the span table becomes partitioned by time, its rows kept (in the
    partition of the time before the migration) and received when their trace was; SQLite
    keeps its plain table and its rows."""
    from plumbing.partitions import is_partitioned, partitions

    apps = migrate(("traces", "0005_opentelemetry_spans"))
    Trace, Span = apps.get_model("traces", "Trace"), apps.get_model("traces", "Span")
    trace = Trace.objects.create(id=7, status="open")
    other = Trace.objects.create(id=8, status="open")
    for group_id in ("a", "b"):
        Span.objects.create(trace=trace, group_id=group_id, name=group_id)  # received: now()
    Span.objects.create(trace=other, group_id="a", name="c")
    rows = sorted(Span.objects.values_list("id", "trace_id", "group_id", "name"))
    assert not is_partitioned("traces_span")

    apps = migrate(("traces", "0006_partition_spans"))
    Trace, Span = apps.get_model("traces", "Trace"), apps.get_model("traces", "Span")
    assert sorted(Span.objects.values_list("id", "trace_id", "group_id", "name")) == rows
    if connection.vendor == "postgresql":
        assert is_partitioned("traces_span")
        created = dict(Trace.objects.values_list("id", "created"))
        assert all(received == created[trace_id]
                   for trace_id, received in Span.objects.values_list("trace_id", "received"))
        past = partitions("traces_span")[0]
        assert past.lower is None and past.name.startswith("traces_span_before_")
        with connection.cursor() as cursor:
            cursor.execute("SELECT DISTINCT tableoid::regclass::text FROM traces_span")
            assert cursor.fetchall() == [(past.name,)]
    else:
        assert not is_partitioned("traces_span")
    # New spans get ids after the old ones.
    assert Span.objects.create(trace_id=7, group_id="c").id > max(row[0] for row in rows)

    migrate(("traces", "0005_opentelemetry_spans"))  # and back: a plain table with the rows
    assert not is_partitioned("traces_span")
    Span = migrate(("traces", "0005_opentelemetry_spans")).get_model("traces", "Span")
    assert len(Span.objects.all()) == 4


def _trace_indexes() -> dict[str, str]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes "
                           "WHERE tablename = 'traces_trace'")
            return dict(cursor.fetchall())
        cursor.execute("SELECT name, coalesce(sql, '') FROM sqlite_master "
                       "WHERE type = 'index' AND tbl_name = 'traces_trace'")
        return dict(cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_the_trace_table_keeps_its_indexes_without_the_pattern_ops_copies():
    """0009: the four varchar_pattern_ops indexes PostgreSQL had beside the text columns' own
    are gone; those own indexes and the unique trace id stay, under their names, and going back
    makes the four again."""
    migrate(("traces", "0008_service_names"))
    before = _trace_indexes()
    apps = migrate(("traces", "0009_trace_indexes_without_pattern_ops"))
    after = _trace_indexes()
    assert not [name for name in after if name.endswith("_like")]
    assert {name for name in before if not name.endswith("_like")} == set(after)
    if connection.vendor == "postgresql":
        assert sorted(name for name in before if name.endswith("_like")) == [
            "traces_trace_name_0af1d72e_like", "traces_trace_service_a52667bd_like",
            "traces_trace_status_f833142a_like", "traces_trace_trace_id_f57b2925_like"]
    Trace = apps.get_model("traces", "Trace")
    Trace.objects.create(id=1, status="open", trace_id="ab" * 16)
    with pytest.raises(IntegrityError), transaction.atomic():
        Trace.objects.create(id=2, status="open", trace_id="ab" * 16)
    Trace.objects.create(id=3, status="open", trace_id=None)
    Trace.objects.create(id=4, status="open", trace_id=None)  # no trace id: any number of them
    migrate(("traces", "0008_service_names"))
    assert _trace_indexes().keys() == before.keys()
