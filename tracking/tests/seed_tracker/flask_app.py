"""A Flask app tracked by the published seed tracker (rigidanalytics-tracker 2.0.5), set up as
its README says. tracking/tests/test_ingest_queue.py runs it with the Python of
.venv-seed-tracker/ (built by `make install-dev`); the test suite never imports it.

    RA_PROJECT_ID=<project id> RA_PROJECT_TOKEN=<token> \
    RA_BACKEND_ENDPOINT=http://127.0.0.1:8000/tracking/ \
        .venv-seed-tracker/bin/python tracking/tests/seed_tracker/flask_app.py

Served by Werkzeug's threaded server (each request on a thread of its own), on a free port
printed as {"port": N} once listening. One route: / ("hello").
"""

import json
import logging
import os

from flask import Flask
from rigidanalytics_tracker.flask import Tracker

flask_app = Flask("seed_tracked_app")
# The tracker keeps its session id in Flask's session, which needs a key to sign it.
flask_app.secret_key = os.urandom(16)
flask_app.config["RIGID_ANALYTICS"] = {
    "PROJECT_ID": os.environ["RA_PROJECT_ID"],
    "PROJECT_TOKEN": os.environ["RA_PROJECT_TOKEN"],
    "DEBUG_DISABLE_ANALYTICS": False,
    "BACKEND_ENDPOINT": os.environ.get("RA_BACKEND_ENDPOINT", ""),
}
tracker = Tracker()
tracker.init_app(flask_app)


@flask_app.route("/")
def home():
    return "hello"


def main():
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    server = make_server("127.0.0.1", 0, flask_app, threaded=True)
    print(json.dumps({"port": server.server_port}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
