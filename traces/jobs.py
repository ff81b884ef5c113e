"""The traces app's parts of the shared scheduled jobs (notifications.jobs)."""


from django.db.models import Count

from notifications.jobs import digest_section, prunes_older_than
from traces.models import Trace

prune_traces = prunes_older_than("traces", 20, Trace, "created", "TRACE_RETENTION_DAYS")


@digest_section("traces", order=20)
def digest_traces(since):
    traces = dict(Trace.objects.filter(created__gte=since).values_list("status")
                  .annotate(n=Count("pk")))
    line = f"Traces: {sum(traces.values())} received, {traces.get('inconsistent', 0)} inconsistent."
    return line, [["Traces", sum(traces.values())]]
