"""A small shop, instrumented the way docs/walkthrough.md tells you to instrument yours.

Two instruments, both pointed at the same Monitor server, both configured from the environment:

- OpenTelemetry: each request is a SERVER span (made by opentelemetry-instrumentation-flask when
  it is installed, else by the WSGI middleware of opentelemetry-instrumentation-wsgi), with the
  app's own spans inside it, exported over OTLP/HTTP. The SDK reads
  OTEL_EXPORTER_OTLP_ENDPOINT (Monitor's address; the SDK adds /v1/traces),
  OTEL_EXPORTER_OTLP_HEADERS ("Authorization=Bearer%20<project token>") and OTEL_SERVICE_NAME.
- Monitor's request tracker (monitor_request_tracker's Flask extension): one request metric per
  request, sent in the background to the same project (RA_PROJECT_ID, RA_PROJECT_TOKEN,
  RA_BACKEND_ENDPOINT). It records the SERVER span's ids, so Monitor counts the request once
  although both send it.

Routes: GET / (the catalogue), GET /products/<id>, GET /search?q= (deliberately slow: a "full
scan"), POST /checkout (a bug: an empty cart divides by zero, answered 500).

    python shop.py [--host 127.0.0.1] [--port 0]

prints `listening on http://HOST:PORT/` once it serves (port 0: a free one), and on SIGTERM or
Ctrl-C stops, flushing its spans and tracked requests before it exits.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from flask import Flask, abort, jsonify, request
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from werkzeug.serving import make_server

from monitor_request_tracker.flask import Tracker

PRODUCTS = {
    1: {"id": 1, "name": "Trail shoes", "price": 89.0},
    2: {"id": 2, "name": "Rain jacket", "price": 129.0},
    3: {"id": 3, "name": "Wool socks", "price": 12.5},
}
# How long the search's "full scan" takes: the slow request of the demo.
SEARCH_SECONDS = float(os.environ.get("SHOP_SEARCH_SECONDS", "0.8"))

tracer = trace.get_tracer("linked_demo.shop")


def setup_tracing() -> TracerProvider:
    """The SDK with an OTLP/HTTP exporter; endpoint, headers and service name from OTEL_*."""
    provider = TracerProvider(resource=Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", "linked-demo-shop")}))
    # Spans leave at most every 200 ms (the default is 5 s): the demo's pages fill at once.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=200))
    trace.set_tracer_provider(provider)
    return provider


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["RIGID_ANALYTICS"] = {
        # The rest (project id, token, endpoint) from RA_PROJECT_ID, RA_PROJECT_TOKEN and
        # RA_BACKEND_ENDPOINT. False: track even when the app runs in debug mode.
        "DEBUG_DISABLE_ANALYTICS": False,
        "FLUSH_INTERVAL": 0.2,
    }

    try:  # the Flask instrumentation, when it is installed ...
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
    except ImportError:  # ... else the WSGI middleware makes the SERVER span
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

        app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app)  # type: ignore[method-assign]

        @app.before_request
        def _name_the_span():
            # What FlaskInstrumentor does: the route is the request's view on the dashboard.
            span = trace.get_current_span()
            if request.url_rule is not None and span.is_recording():
                span.set_attribute("http.route", request.url_rule.rule)
                span.update_name(f"{request.method} {request.url_rule.rule}")
    else:
        FlaskInstrumentor().instrument_app(app)
    # After the instrumentation: the tracker reads the SERVER span it opened.
    Tracker(app)

    def route(rule: str, method: str = "GET"):
        # Each view's endpoint is named after its route. The tracker names a request's view by
        # its Flask endpoint, OpenTelemetry by its route (`http.route`), and Monitor keeps the
        # name of whichever report of a request arrives first: named alike, a view is one row
        # of the dashboard, whoever reported its requests.
        return app.route(rule, methods=[method], endpoint=rule)

    @route("/")
    def catalogue():
        return jsonify(products=list(PRODUCTS.values()))

    @route("/products/<int:product_id>")
    def product(product_id: int):
        if product_id not in PRODUCTS:
            abort(404)
        return jsonify(PRODUCTS[product_id])

    @route("/search")
    def search():
        query = request.args.get("q", "").lower()
        with tracer.start_as_current_span("full scan of the catalogue") as span:
            time.sleep(SEARCH_SECONDS)  # no index: every product is read, slowly
            found = [p for p in PRODUCTS.values() if query in p["name"].lower()]
            span.set_attribute("shop.search.results", len(found))
        return jsonify(products=found)

    @route("/checkout", "POST")
    def checkout():
        items = (request.get_json(silent=True) or {}).get("items", [])
        with tracer.start_as_current_span("price the cart") as span:
            span.set_attribute("shop.cart.items", len(items))
            total = sum(PRODUCTS[item["id"]]["price"] * item.get("quantity", 1)
                        for item in items)
            # The bug the demo's failing test finds: an empty cart divides by zero. The span
            # records the exception (status error) and the request is answered 500.
            average = total / len(items)
        return jsonify(total=total, average_price=round(average, 2))

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (default)")
    options = parser.parse_args(argv)
    provider = setup_tracing()
    server = make_server(options.host, options.port, create_app(), threaded=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on http://{options.host}:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        # Spans still waiting in the batch processor go now; the tracker flushes its queue at
        # interpreter exit (within its SHUTDOWN_TIMEOUT).
        provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
