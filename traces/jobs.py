"""The traces app's parts of the shared scheduled jobs (notifications.jobs)."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from notifications.jobs import delete_in_batches, digest_section, prunes
from traces.models import Trace


@prunes("traces", order=20)
def prune_traces() -> int:
    cutoff = timezone.now() - timedelta(days=settings.TRACE_RETENTION_DAYS)
    return delete_in_batches(Trace.objects.filter(created__lt=cutoff))


@digest_section("traces", order=20)
def digest_traces(since):
    traces = dict(Trace.objects.filter(created__gte=since).values_list("status")
                  .annotate(n=Count("pk")))
    line = f"Traces: {sum(traces.values())} received, {traces.get('inconsistent', 0)} inconsistent."
    return line, [["Traces", sum(traces.values())]]
