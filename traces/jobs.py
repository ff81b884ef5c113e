"""The traces app's scheduled jobs and its parts of the shared ones (notifications.jobs)."""


from django.db.models import Count

from notifications.jobs import digest_section, job, prunes_older_than
from traces.models import Trace
from traces.span_ingest import complete_quiet_traces


@job("complete_quiet_traces", "* * * * *",
     "Mark complete the OTLP and Zipkin traces whose root span has arrived and that received no "
     "span for TRACE_OTLP_QUIET_SECONDS (reads already call them complete; the stored status "
     "follows, for the status filters).")
def mark_quiet_traces_complete() -> str:
    return f"{complete_quiet_traces()} OTLP/Zipkin trace(s) marked complete"

prune_traces = prunes_older_than("traces", 20, Trace, "created", "TRACE_RETENTION_DAYS")


@digest_section("traces", order=20)
def digest_traces(since):
    traces = dict(Trace.objects.filter(created__gte=since).values_list("status")
                  .annotate(n=Count("pk")))
    line = f"Traces: {sum(traces.values())} received, {traces.get('inconsistent', 0)} inconsistent."
    return line, [["Traces", sum(traces.values())]]
