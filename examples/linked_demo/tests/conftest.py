"""The suite's OpenTelemetry: the tests' spans (the pytest plugin's span per test, and the
instrumented `requests` calls inside it) go to the same Monitor server over OTLP/HTTP, so a test's
trace holds the test, its HTTP calls and the app's spans, in one tree.

Configured from the environment like the app: OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME. SHOP_URL is the app under test.
"""

import os

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = None


def pytest_configure(config):
    global provider
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        provider = TracerProvider(resource=Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME", "linked-demo-tests")}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(),
                                                       schedule_delay_millis=200))
        trace.set_tracer_provider(provider)
    # Every `requests` call is a CLIENT span that sends the test's traceparent to the app.
    RequestsInstrumentor().instrument()


def pytest_unconfigure(config):
    if provider is not None:
        provider.shutdown()  # the last tests' spans leave before the session ends


@pytest.fixture
def shop():
    url = os.environ.get("SHOP_URL")
    if not url:
        pytest.skip("SHOP_URL: the address of the running shop (python shop.py)")
    return url.rstrip("/")
