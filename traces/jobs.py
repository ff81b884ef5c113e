"""The traces app's scheduled jobs and its parts of the shared ones (notifications.jobs)."""


from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from notifications.jobs import delete_in_batches, digest_section, job, prunes
from plumbing import partitions
from traces.models import Trace
from traces.span_ingest import complete_quiet_traces


@job("complete_quiet_traces", "* * * * *",
     "Mark complete the OTLP and Zipkin traces whose root span has arrived and that received no "
     "span for TRACE_OTLP_QUIET_SECONDS (reads already call them complete; the stored status "
     "follows, for the status filters).")
def mark_quiet_traces_complete() -> str:
    return f"{complete_quiet_traces()} OTLP/Zipkin trace(s) marked complete"


@prunes("traces", order=20)
def prune_traces() -> int:
    """Traces created more than TRACE_RETENTION_DAYS ago go, with their spans and events.
    On PostgreSQL the spans' partitions wholly before the cutoff are dropped (a trace's spans
    are `received` when the trace was `created`, so they leave together); rows are deleted only
    in the partition straddling the cutoff. Counts the traces."""
    cutoff = timezone.now() - timedelta(days=settings.TRACE_RETENTION_DAYS)
    if not partitions.is_partitioned("traces_span"):  # SQLite: plain tables, Django cascades
        return delete_in_batches(Trace.objects.filter(created__lt=cutoff))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute('DELETE FROM "traces_event" WHERE "trace_id" IN '
                       '(SELECT "id" FROM "traces_trace" WHERE "created" < %s)', [cutoff])
        cursor.execute('DELETE FROM "traces_trace" WHERE "created" < %s', [cutoff])
        traces = cursor.rowcount
    partitions.prune("traces_span", "received", cutoff)
    return traces


@digest_section("traces", order=20)
def digest_traces(since):
    traces = dict(Trace.objects.filter(created__gte=since).values_list("status")
                  .annotate(n=Count("pk")))
    line = f"Traces: {sum(traces.values())} received, {traces.get('inconsistent', 0)} inconsistent."
    return line, [["Traces", sum(traces.values())]]
