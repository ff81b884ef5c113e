from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Request metrics"

    def ready(self):
        from plumbing.spans import spans_stored
        from tracking import trace_links  # registers the "requests" finder

        spans_stored.connect(trace_links.requests_from_spans,
                             dispatch_uid="tracking.requests_from_spans")
