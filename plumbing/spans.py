"""`spans_stored`: what traces tells the other apps after it stored OpenTelemetry spans (OTLP/HTTP
or Zipkin v2), so that they can act on them without traces importing them (docs/apps.md).

Sent by traces.otlp once a request's spans are written (their transaction committed), in the
worker thread that wrote them, with:

- `project`: the request-metrics project whose token sent the spans (tracking's Project);
- `spans`: the decoded spans, each with the attributes `trace_id` (32 lowercase hex digits),
  `span_id` (16), `parent_span_id` ("" for a root), `name`, `kind` (OTLP's SpanKind number:
  2 is SERVER), `start` and `end` (nanoseconds since 1970), `status_code`, `attributes` and
  `resource` (dicts), `service`.

A receiver that raises makes the request fail (503): the exporter sends the spans again, which
are not stored twice, so a receiver must be idempotent. tracking's receiver turns SERVER spans
into request metrics (tracking.otel_requests), stored once per trace and span id.
"""

from django.dispatch import Signal

spans_stored = Signal()
