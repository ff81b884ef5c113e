"""A tracked app served over real HTTP in its own process, for the outage tests.

    TRACKED_FRAMEWORK=flask|django RA_PROJECT_ID=... RA_PROJECT_TOKEN=... RA_BACKEND_ENDPOINT=...
    RA_TEST_TUNING='{"QUEUE_SIZE": 300}' TRACKED_TRACEMALLOC=4 python tracked_app_server.py

Flask: a small app defined here, with the Tracker extension. Django: tracked_django_site (the
middleware) through Django's WSGI handler. Both are served by Werkzeug's threaded server, which
answers each request on its own connection in its own thread. Prints {"port": N} once listening.
Routes: / ("hello"), /after/ ("after": requests made after the backend came back), and
/_tracker/: the tracker's stats() with the process's traced memory (tracemalloc, after a GC,
once no other request is being handled) and resident memory. /_tracker/?dump=PATH also writes a
tracemalloc snapshot there (after measuring, and dropped at once, so that it is not counted next
time), for a failing test to show where memory went. Every route is tracked, /_tracker/ too.
TRACKED_TRACEMALLOC=N traces N frames per allocation.
TRACKED_OTLP_ENDPOINT=URL (Django only) instruments the site with OpenTelemetry as an app would:
the SDK, DjangoInstrumentor (a SERVER span per request, around the tracker's middleware) and the
OTLP/HTTP exporter sending each span as it ends to URL, with TRACKED_OTLP_TOKEN as its bearer
token.
"""

import gc
import json
import logging
import os
import sys
import threading
import time
import tracemalloc


def other_requests_done(timeout=2.0) -> bool:
    """Wait until this is the only request being handled. Werkzeug's server answers each request
    on a new connection in a new thread, which then drains the socket with
    rfile.read(10_000_000): a 10 MB buffer that lives until the client's close arrives. Measured
    meanwhile, it looked like a 10 MB leak of the tracker."""
    me = threading.current_thread()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(thread is not me and "process_request_thread" in thread.name
                   for thread in threading.enumerate()):
            return True
        time.sleep(0.005)
    return False


def state(dump: str | None = None) -> dict:
    import monitor_request_tracker

    alone = other_requests_done()
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    answer = {"stats": monitor_request_tracker.stats(), "traced_bytes": traced, "rss_bytes": rss,
              "alone": alone}
    if dump and tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(dump)
    return answer


def flask_app():
    from flask import Flask, request

    from monitor_request_tracker.flask import Tracker

    app = Flask("tracked_flask_app")
    app.config["RIGID_ANALYTICS"] = {
        "PROJECT_ID": os.environ["RA_PROJECT_ID"], "PROJECT_TOKEN": os.environ["RA_PROJECT_TOKEN"],
        "DEBUG_DISABLE_ANALYTICS": False, "BACKEND_ENDPOINT": os.environ["RA_BACKEND_ENDPOINT"],
        **json.loads(os.environ.get("RA_TEST_TUNING", "{}")),
    }
    app.add_url_rule("/", "home", lambda: "hello")
    app.add_url_rule("/after/", "after", lambda: "after")
    app.add_url_rule("/_tracker/", "tracker-state",
                     lambda: state(request.args.get("dump")))
    Tracker(app)
    return app


def instrument_django(endpoint: str, token: str) -> None:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "tracked-django"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=endpoint, headers={"Authorization": f"Bearer {token}"})))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()  # before the WSGI handler loads the middleware


def django_app():
    os.environ["DJANGO_SETTINGS_MODULE"] = "tracked_django_site"
    if os.environ.get("TRACKED_OTLP_ENDPOINT"):
        instrument_django(os.environ["TRACKED_OTLP_ENDPOINT"], os.environ["TRACKED_OTLP_TOKEN"])
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def main():
    frames = int(os.environ.get("TRACKED_TRACEMALLOC") or 0)
    if frames:
        tracemalloc.start(frames)
    app = django_app() if os.environ.get("TRACKED_FRAMEWORK") == "django" else flask_app()
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(json.dumps({"port": server.server_port}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.modules.setdefault("tracked_app_server", sys.modules["__main__"])
    main()
