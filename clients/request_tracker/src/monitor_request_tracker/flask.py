"""Flask extension: Tracker(app) or Tracker().init_app(app), configured by
app.config["RIGID_ANALYTICS"] (see monitor_request_tracker.config)."""

import time

from flask import g, request

from monitor_request_tracker.config import resolve
from monitor_request_tracker.sender import get_sender

_HEADER_KEYS = ("HTTP_HOST", "HTTP_REFERER", "CONTENT_TYPE", "HTTP_ACCEPT_LANGUAGE")


class Tracker:
    def __init__(self, app=None):
        self.sender = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app):
        config = resolve(app.config.get("RIGID_ANALYTICS"), app.debug)
        app.extensions["monitor_request_tracker"] = self
        if not config.enabled:
            return
        self.sender = sender = get_sender(config)

        @app.before_request
        def _start_clock():
            g._monitor_tracker_start = (time.time(), time.perf_counter_ns())

        @app.after_request
        def _record(response):
            try:
                started, start = g.pop("_monitor_tracker_start")
                environ = request.environ
                size = response.calculate_content_length() if not response.is_streamed else None
                sender.record((
                    started, time.perf_counter_ns() - start, request.method, request.path,
                    environ.get("QUERY_STRING"), request.endpoint or "", response.status_code,
                    environ.get("HTTP_COOKIE"), environ.get("HTTP_USER_AGENT"),
                    environ.get("REMOTE_ADDR"), size,
                    tuple(environ.get(key) for key in _HEADER_KEYS),
                ))
            except Exception:  # noqa: BLE001 - metrics must never break the host's response
                pass
            return response
