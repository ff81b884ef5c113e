"""A tracked app served over real HTTP in its own process, for the outage tests.

    TRACKED_FRAMEWORK=flask|django RA_PROJECT_ID=... RA_PROJECT_TOKEN=... RA_BACKEND_ENDPOINT=...
    RA_TEST_TUNING='{"QUEUE_SIZE": 300}' TRACKED_TRACEMALLOC=1 python tracked_app_server.py

Flask: a small app defined here, with the Tracker extension. Django: tracked_django_site (the
middleware) through Django's WSGI handler. Both are served by Werkzeug's threaded HTTP/1.1
server (keep-alive, a thread per connection). Prints {"port": N} once listening.
Routes: / ("hello"), /after/ ("after": requests made after the backend came back), and
/_tracker/: the tracker's stats() with the process's traced (tracemalloc, after a GC) and
resident memory. Every route is tracked, /_tracker/ included.
"""

import gc
import json
import os
import sys
import tracemalloc


def state() -> dict:
    import monitor_request_tracker

    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return {"stats": monitor_request_tracker.stats(), "traced_bytes": traced, "rss_bytes": rss}


def flask_app():
    from flask import Flask

    from monitor_request_tracker.flask import Tracker

    app = Flask("tracked_flask_app")
    app.config["RIGID_ANALYTICS"] = {
        "PROJECT_ID": os.environ["RA_PROJECT_ID"], "PROJECT_TOKEN": os.environ["RA_PROJECT_TOKEN"],
        "DEBUG_DISABLE_ANALYTICS": False, "BACKEND_ENDPOINT": os.environ["RA_BACKEND_ENDPOINT"],
        **json.loads(os.environ.get("RA_TEST_TUNING", "{}")),
    }
    app.add_url_rule("/", "home", lambda: "hello")
    app.add_url_rule("/after/", "after", lambda: "after")
    app.add_url_rule("/_tracker/", "tracker-state", state)
    Tracker(app)
    return app


def django_app():
    os.environ["DJANGO_SETTINGS_MODULE"] = "tracked_django_site"
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def main():
    if os.environ.get("TRACKED_TRACEMALLOC") == "1":
        tracemalloc.start()
    app = django_app() if os.environ.get("TRACKED_FRAMEWORK") == "django" else flask_app()
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args, **kwargs):
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    print(json.dumps({"port": server.server_port}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.modules.setdefault("tracked_app_server", sys.modules["__main__"])
    main()
