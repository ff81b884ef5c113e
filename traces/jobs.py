"""The traces app's scheduled jobs and its parts of the shared ones (notifications.jobs)."""


from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from notifications.jobs import delete_in_batches, digest_section, job, prunes
from plumbing import partitions
from traces import service_names
from traces.models import Trace
from traces.span_ingest import complete_quiet_traces


@job("complete_quiet_traces", "* * * * *",
     "Mark complete the OTLP and Zipkin traces whose root span has arrived and that received no "
     "span for TRACE_OTLP_QUIET_SECONDS (reads already call them complete; the stored status "
     "follows, for the status filters).")
def mark_quiet_traces_complete() -> str:
    return f"{complete_quiet_traces()} OTLP/Zipkin trace(s) marked complete"


@job("forget_unused_services", "45 3 * * *",
     "Forget the service names that no stored span or trace has any more (retention removed "
     "them), so the trace list's service picker offers only services it can find. One scan of "
     "the spans.")
def forget_unused_services() -> str:
    return f"{service_names.forget_unused()} service name(s) no stored span has, forgotten"


@prunes("traces", order=20)
def prune_traces() -> int:
    """Traces created more than TRACE_RETENTION_DAYS ago go, with their spans and events.
    On PostgreSQL the spans' partitions wholly before the cutoff are dropped (a trace's spans
    are `received` when the trace was `created`, so they leave together); rows are deleted only
    in the partition straddling the cutoff. Counts the traces."""
    cutoff = timezone.now() - timedelta(days=settings.TRACE_RETENTION_DAYS)
    if not partitions.is_partitioned("traces_span"):  # SQLite: plain tables, Django cascades
        return delete_in_batches(Trace.objects.filter(created__lt=cutoff))
    if connection.in_atomic_block:  # a caller's transaction (tests): one step after the other
        traces = _delete_rows(cutoff)
        partitions.drop_partitions_before("traces_span", cutoff)
        return traces
    # The steps share nothing but the cutoff: the rows (of traces, and of spans in the partition
    # straddling the cutoff) are deleted on a thread with a connection of its own while this one
    # drops the span partitions, whose file removal (most of the step's time, in the kernel)
    # overlaps the deletes (bench/retention.py).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prune-traces") as pool:
        traces = pool.submit(_on_own_connection, _delete_rows, cutoff)
        partitions.drop_partitions_before("traces_span", cutoff)
        return traces.result()


def _delete_rows(cutoff) -> int:
    """The trace rows (and their events) created before `cutoff`, in one transaction, then the
    span rows before it in the partition straddling it; how many traces."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute('DELETE FROM "traces_event" WHERE "trace_id" IN '
                       '(SELECT "id" FROM "traces_trace" WHERE "created" < %s)', [cutoff])
        cursor.execute('DELETE FROM "traces_trace" WHERE "created" < %s', [cutoff])
        traces = cursor.rowcount
    partitions.delete_rows_before("traces_span", "received", cutoff)
    return traces


def _on_own_connection(function, *args):
    """function(*args) on this thread's own database connection, closed after."""
    try:
        return function(*args)
    finally:
        connection.close()


@digest_section("traces", order=20)
def digest_traces(since):
    traces = dict(Trace.objects.filter(created__gte=since).values_list("status")
                  .annotate(n=Count("pk")))
    line = f"Traces: {sum(traces.values())} received, {traces.get('inconsistent', 0)} inconsistent."
    return line, [["Traces", sum(traces.values())]]
