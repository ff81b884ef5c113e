"""Request metrics for Django and Flask apps, sent to a Monitor server without ever blocking.

Django: add "monitor_request_tracker.django.RequestTrackerMiddleware" to MIDDLEWARE.
Flask:  monitor_request_tracker.flask.Tracker(app)  (or Tracker().init_app(app)).
Both read the RIGID_ANALYTICS setting of the legacy tracker, rigidanalytics-tracker (see
config.py).
stats(): this process's counters (queued, sent, dropped, retries, backend failing), for the
host's own monitoring.
"""

__version__ = "1.1.0"


def stats() -> dict:
    """Counters of this process's tracker: queued, sent, dropped (queue full + batches given
    up), batches sent/failed, retries, backend_failing and last_error. See sender.stats()."""
    from monitor_request_tracker.sender import stats as sender_stats

    return sender_stats()
