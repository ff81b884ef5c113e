"""End-to-end load test of a tracked demo app, with locust.

locust is not a project dependency: install it where you run it (`pip install locust`).

1. Start Monitor and get a project:   python manage.py create_project "Load test"
2. Start the tracked demo app (Flask + monitor-request-tracker, one process per core):
       RA_PROJECT_ID=... RA_PROJECT_TOKEN=... RA_BACKEND_ENDPOINT=http://127.0.0.1:8000/ \\
       python bench/locustfile.py serve --port 5001
3. Load it:  locust -f bench/locustfile.py --host http://127.0.0.1:5001
   and watch /metrics/<project id>/ follow live. Compare with RA_PROJECT_ID unset (tracking off)
   to see the tracker's share of the app's latency.
"""

import os
import random
import sys
import time


def demo_app():
    from flask import Flask, abort, jsonify

    from monitor_request_tracker.flask import Tracker

    app = Flask("tracked_demo_app")
    app.config["RIGID_ANALYTICS"] = {
        "PROJECT_ID": os.environ.get("RA_PROJECT_ID", ""),
        "PROJECT_TOKEN": os.environ.get("RA_PROJECT_TOKEN", ""),
        "DEBUG_DISABLE_ANALYTICS": False,
        "BACKEND_ENDPOINT": os.environ.get("RA_BACKEND_ENDPOINT", ""),
    }
    Tracker(app)

    @app.get("/")
    def home():
        return "ok"

    @app.get("/products/<int:product_id>")
    def product(product_id):
        if product_id > 900:
            abort(404)
        time.sleep(random.lognormvariate(-5, 0.5))  # ~7 ms of "database"
        return jsonify(id=product_id)

    @app.post("/checkout")
    def checkout():
        if random.random() < 0.02:
            raise RuntimeError("payment provider timed out")
        time.sleep(random.lognormvariate(-3, 0.5))
        return jsonify(paid=True)

    return app


if len(sys.argv) > 1 and sys.argv[1] == "serve":
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 5001
    demo_app().run(host="127.0.0.1", port=port, threaded=True)
else:
    from locust import HttpUser, between, task

    class Shopper(HttpUser):
        wait_time = between(0.05, 0.5)

        @task(5)
        def browse(self):
            self.client.get("/")

        @task(10)
        def product(self):
            self.client.get(f"/products/{random.randint(1, 1000)}", name="/products/[id]")

        @task(1)
        def checkout(self):
            with self.client.post("/checkout", catch_response=True) as response:
                if response.status_code == 500:
                    response.success()  # an expected failure of the demo app
