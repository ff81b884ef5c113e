"""Traces by trace id, for the pages of other apps (plumbing.trace_links): a request row or a
test links to its trace when that trace was sent here (OTLP/HTTP or Zipkin)."""

from django.urls import reverse

from plumbing.trace_links import Link, finder
from traces.models import Trace


@finder("trace")
def traces_of(trace_ids: list[str], limit: int) -> dict[str, list[Link]]:
    rows = Trace.objects.filter(trace_id__in=trace_ids).values_list(
        "trace_id", "name", "service", "span_count")
    return {
        trace_id: [Link("trace", name or "(unnamed)", reverse("traces:detail", args=[trace_id]),
                        f"Trace {trace_id}: {spans} span(s)"
                        + (f" of {service}" if service else ""))]
        for trace_id, name, service, spans in rows
    }
