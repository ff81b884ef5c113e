"""Request metrics for Django and Flask apps, sent to a Monitor server without ever blocking.

Django: add "monitor_request_tracker.django.RequestTrackerMiddleware" to MIDDLEWARE.
Flask:  monitor_request_tracker.flask.Tracker(app)  (or Tracker().init_app(app)).
Both read the RIGID_ANALYTICS setting of seed 001's tracker (see config.py).
"""

__version__ = "1.0.0"
