"""Requests by trace id, for the pages of other apps (plumbing.trace_links), and the receiver
that turns OpenTelemetry SERVER spans into request metrics (plumbing.spans). Connected by
TrackingConfig.ready."""

from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber
from django.urls import reverse
from django.utils.http import urlencode

from plumbing.trace_links import Link, finder
from tracking import otel_requests, services
from tracking.models import RequestMetric


def requests_url(project_public_id, trace_id: str) -> str:
    """The project's dashboard listing the requests of one trace."""
    return (reverse("tracking:project", args=[project_public_id]) + "?"
            + urlencode({"trace_id": trace_id}))


@finder("requests")
def requests_of(trace_ids: list[str], limit: int) -> dict[str, list[Link]]:
    """The first `limit` requests of each trace (one query), each linking to its project's
    dashboard filtered to the trace."""
    rows = (RequestMetric.objects.filter(trace_id__in=trace_ids)
            .annotate(number=Window(RowNumber(), partition_by=[F("trace_id")],
                                    order_by=[F("received_at").asc(), F("id").asc()]),
                      total=Window(Count("id"), partition_by=[F("trace_id")]))
            .filter(number__lte=limit)
            .values_list("trace_id", "method", "path", "status_code", "duration_ms",
                         "project__public_id", "project__name", "total")
            .order_by("trace_id", "number"))
    found: dict[str, list[Link]] = {}
    for trace_id, method, path, status, duration, public_id, name, total in rows:
        links = found.setdefault(trace_id, [])
        links.append(Link(
            "requests", f"{method or '?'} {path} {status} · {duration:.1f} ms",
            requests_url(public_id, trace_id), f"A request of this trace, tracked in {name}",
            more=total - limit if len(links) == limit - 1 and total > limit else 0))
    return found


def requests_from_spans(sender, project, spans, **kwargs) -> None:
    """plumbing.spans.spans_stored: the SERVER spans among `spans` become request metrics of
    `project` through the one ingest path (rollups, alerts, live page), each counted once."""
    events = otel_requests.request_events(spans)
    if events:
        services.ingest_events(project, events)
