"""OTLP spans stored per second: concurrent exporters POST protobuf batches to one server process.

Each of N concurrent exporters (8) sends ExportTraceServiceRequests of 512 spans (the
OpenTelemetry SDK's default batch: BatchSpanProcessor's max_export_batch_size) to /v1/traces,
back to back, for --seconds. The batches are built once with the opentelemetry-proto messages (the
bytes an SDK sends): 32 web-request traces of 16 nested spans over two services (resource
service.name), with attributes, events, a database statement per query span, and about one trace
in eight failing (an error status and an exception event with a stack trace). Each request gets
trace ids of its own (a byte marker in the template replaced), so that every span is new.

The baseline, in the same run and on the same server: the same clients against
/v1/bench/decode-only/traces (TRACE_BENCH_NOOP): the same lean path, token check, thread hop and
protobuf decoding into the span records, everything but the write. Prints spans/s, p50/p99 per
batch (request sent to answer read) and stored / decode-only; at the end the spans counted in the
database against those the answers said were stored.

One server process (plumbing.devserver.Server, uvicorn unless MONITOR_SERVER says otherwise) on
PostgreSQL (a database bench_otlp_<pid> created, migrated and dropped; BENCH_PG, default
postgres://postgres@127.0.0.1:5432). The clients are one asyncio process (aiohttp).
Target (issue 15): 30,000 spans/s stored and at least 0.5 of the decode-only receiver.

    .venv/bin/python bench/otlp_ingest.py                 # about 40 s
    .venv/bin/python bench/otlp_ingest.py --seconds 15 --rounds 3 --clients 8
"""

import asyncio
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from harness import options
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plumbing.devserver import Server  # noqa: E402 (sys.path set above)

MARKER = b"\xfe\xed\xfa\xce"  # in every trace id of the template: replaced per request
TARGET = 30_000
T0 = 1_764_000_000_000_000_000  # ns


def _kv(key, value) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _attributes(items: dict) -> list[KeyValue]:
    return [_kv(key, value) for key, value in items.items()]


def _web_request(rng: random.Random, number: int, spans_per_trace: int,
                 by_service: dict[str, list[Span]]) -> None:
    """One trace: GET /orders/{id} > the view > SELECT queries (some with a cache-miss event),
    a call to the inventory service (its server span and a Redis query there), rendering; one
    trace in eight fails with an exception event."""
    trace_id = rng.randbytes(8) + MARKER + struct.pack(">I", number + 1)
    start = T0 + number * 50_000_000
    failing = number % 8 == 3
    span_ids = iter(rng.randbytes(8) for _ in range(spans_per_trace))
    root_id = next(span_ids)
    order = rng.randint(1, 99999)

    def span(name, parent, offset, length, kind, attributes, events=(), error=None,
             service="checkout", span_id=None):
        message = Span(
            trace_id=trace_id, span_id=span_id or next(span_ids), parent_span_id=parent,
            name=name, kind=kind, start_time_unix_nano=start + offset,
            end_time_unix_nano=start + offset + length, attributes=_attributes(attributes),
            events=list(events))
        if error:
            message.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
        by_service[service].append(message)
        return message.span_id

    def event(name, offset, attributes):
        return Span.Event(name=name, time_unix_nano=start + offset,
                          attributes=_attributes(attributes))

    route = "/orders/{order_id}"
    span(f"GET {route}", b"", 0, 40_000_000, Span.SPAN_KIND_SERVER, {
        "http.request.method": "GET", "http.route": route, "url.path": f"/orders/{order}",
        "http.response.status_code": 500 if failing else 200, "server.address": "shop",
        "server.port": 8000, "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64)",
        "client.address": f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
    }, error="internal error" if failing else None, span_id=root_id)
    handler = span("OrderView.get", root_id, 500_000, 39_000_000, Span.SPAN_KIND_INTERNAL,
                   {"code.function": "get", "code.namespace": "shop.views.OrderView"})
    offset = 1_000_000
    for query in range(spans_per_trace - 6):
        table = ("orders", "order_lines", "customers", "addresses")[query % 4]
        events = [event("cache miss", offset + 10_000, {"cache.key": f"{table}:{order}"})
                  ] if query % 3 == 0 else []
        span(f"SELECT {table}", handler, offset, 1_500_000, Span.SPAN_KIND_CLIENT, {
            "db.system": "postgresql", "db.name": "shop", "db.operation": "SELECT",
            "db.statement": f"SELECT * FROM {table} WHERE order_id = %s LIMIT 21",
            "net.peer.name": "db", "net.peer.port": 5432, "db.rows": query % 5,
        }, events)
        offset += 2_000_000
    call = span("GET inventory", handler, offset, 8_000_000, Span.SPAN_KIND_CLIENT, {
        "http.request.method": "GET", "url.full": f"http://inventory:8001/stock/{order}",
        "http.response.status_code": 503 if failing else 200})
    served = span("GET /stock/{sku}", call, offset + 500_000, 7_000_000,
                  Span.SPAN_KIND_SERVER, {"http.request.method": "GET",
                                          "http.route": "/stock/{sku}"},
                  service="inventory",
                  error="stock service unavailable" if failing else None,
                  events=[event("exception", offset + 7_000_000, {
                      "exception.type": "ConnectionError",
                      "exception.message": "stock service unavailable",
                      "exception.stacktrace": "Traceback (most recent call last):\n"
                      + '  File "stock.py", line 42, in get\n' * 6
                      + "ConnectionError: stock service unavailable"})]
                  if failing else [])
    span("redis GET", served, offset + 1_000_000, 300_000, Span.SPAN_KIND_CLIENT,
         {"db.system": "redis", "db.statement": f"GET stock:{order}"}, service="inventory")
    span("render", handler, offset + 9_000_000, 2_000_000, Span.SPAN_KIND_INTERNAL,
         {"template": "orders/detail.html"})


def build_batch(spans_per_batch: int = 512, spans_per_trace: int = 16, seed: int = 1) -> bytes:
    """One ExportTraceServiceRequest of `spans_per_batch` spans, as an SDK's batch processor
    sends it: the spans of many traces, grouped by resource (service) and scope. The low 8
    bytes of each trace id are MARKER + the trace's number."""
    rng = random.Random(seed)
    by_service: dict[str, list[Span]] = {"checkout": [], "inventory": []}
    for number in range(spans_per_batch // spans_per_trace):
        _web_request(rng, number, spans_per_trace, by_service)
    request = ExportTraceServiceRequest()
    for service, spans in by_service.items():
        resource_spans = ResourceSpans()
        resource_spans.resource.attributes.extend(_attributes({
            "service.name": service, "service.version": "1.4.2",
            "deployment.environment": "production", "host.name": f"{service}-7d9f8",
            "telemetry.sdk.language": "python", "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.version": "1.45.2"}))
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = "opentelemetry.instrumentation.django"
        scope_spans.scope.version = "0.66b2"
        scope_spans.spans.extend(spans)
        request.resource_spans.append(resource_spans)
    body = request.SerializeToString()
    assert body.count(MARKER) == spans_per_batch, "the marker must be only in trace ids"
    return body


async def run_clients(url: str, token: str, template: bytes, clients: int, seconds: float,
                      first_batch: int):
    """(spans the answers said were stored, seconds, latencies, errors) of `clients` posting
    batches back to back, each with new trace ids."""
    latencies, errors, stored = [], [], [0]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"}
    spans_per_batch = template.count(MARKER)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def client(number):
            batch = first_batch + number * 1_000_000
            while time.perf_counter() < deadline:
                batch += 1
                # New trace ids: the marker's 4 bytes become the batch's number.
                body = template.replace(MARKER, struct.pack(">I", batch))
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        answer = await response.read()
                        waited = time.perf_counter() - started
                        if response.status != 200:
                            raise RuntimeError(f"{response.status}: {answer[:200]!r}")
                except Exception as error:  # noqa: BLE001 - counted and shown
                    errors.append(repr(error))
                    if len(errors) > 20:
                        return
                    await asyncio.sleep(0.5)
                    continue
                message = ExportTraceServiceResponse.FromString(answer)
                rejected = message.partial_success.rejected_spans
                if rejected:
                    errors.append(f"{rejected} rejected: {message.partial_success.error_message}")
                latencies.append(waited)
                stored[0] += spans_per_batch - rejected

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    return stored[0], elapsed, latencies, errors


def cpu_seconds(pids) -> dict[int, float]:
    """{pid: user + system CPU seconds} of these processes (Linux /proc), threads included."""
    seconds, tick = {}, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone
        seconds[pid] = (int(fields[11]) + int(fields[12])) / tick
    return seconds


def cpu_used(before: dict, after: dict) -> float:
    """CPU seconds used between two cpu_seconds() (a process started since counts whole)."""
    return sum(used - before.get(pid, 0.0) for pid, used in after.items())


def backends(url: str, database: str) -> list[int]:
    """The PostgreSQL server processes of the bench database's connections (the server's)."""
    return [int(pid) for pid in psql(url, "SELECT pid FROM pg_stat_activity WHERE datname = "
                                          f"'{database}' AND pid <> pg_backend_pid()").split()]


def percentile(values, q):
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def psql(url: str, sql: str) -> str:
    return subprocess.run(["psql", url, "-tAc", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def main():
    args = options(__doc__, clients=8, seconds=10.0, rounds=1, spans=512)
    pg = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")
    database = f"bench_otlp_{os.getpid()}"
    url = f"{pg}/{database}"
    env = {"DATABASE_URL": url, "TRACE_BENCH_NOOP": "True", "DEBUG": "False",
           "LOG_LEVEL": "WARNING", "STATIC_MANIFEST": "False", "REDIS_URL": "",
           "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"}
    migrate_env = {k: v for k, v in os.environ.items() if k not in ("DB_DEFAULT", "REDIS_URL")}
    psql(f"{pg}/postgres", f"CREATE DATABASE {database}")
    server = None
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True,
                       env={**migrate_env, **env})
        token = json.loads(subprocess.run(
            [sys.executable, "manage.py", "create_project", "bench"], cwd=ROOT, check=True,
            capture_output=True, text=True, env={**migrate_env, **env}).stdout)["token"]
        template = build_batch(args.spans)
        server = Server(env, access_log=False).start()
        print(f"OTLP/HTTP protobuf, {args.clients} exporters, batches of {args.spans} spans "
              f"({len(template):,} bytes), {args.seconds:g} s per run, one {server.server} "
              f"process + PostgreSQL ({database})")
        print(f"  {'receiver':<12} {'spans/s':>9} {'batches':>8} {'p50 ms':>8} {'p99 ms':>8}  "
              f"{'stored/decode-only':>18}  CPU ms per 1,000 spans: server, PostgreSQL")
        first_batch, total = 1, 0
        for _ in range(args.rounds):
            rates = {}
            for name, path in (("decode-only", "/v1/bench/decode-only/traces"),
                               ("stored", "/v1/traces")):
                warm = asyncio.run(run_clients(server.url + path, token, template, 2, 0.5,
                                               first_batch))
                first_batch += 20_000_000
                cpu = cpu_seconds([server.process.pid]), cpu_seconds(backends(url, database))
                count, elapsed, latencies, errors = asyncio.run(run_clients(
                    server.url + path, token, template, args.clients, args.seconds,
                    first_batch))
                cpu = (cpu_used(cpu[0], cpu_seconds([server.process.pid])),
                       cpu_used(cpu[1], cpu_seconds(backends(url, database))))
                count = max(count, 1)
                first_batch += 20_000_000
                rates[name] = count / elapsed
                if name == "stored":
                    total += warm[0] + count
                ratio = f"{rates[name] / rates['decode-only']:.2f}" if name == "stored" else ""
                print(f"  {name:<12} {rates[name]:>9,.0f} {len(latencies):>8} "
                      f"{percentile(latencies, 50) * 1e3:>8.1f} "
                      f"{percentile(latencies, 99) * 1e3:>8.1f}  {ratio:>18}  "
                      f"{cpu[0] / count * 1e6:>8.1f} {cpu[1] / count * 1e6:>8.1f}", flush=True)
                if errors:
                    print(f"    {len(errors)} error(s), first: {errors[0]}")
            print(f"  target: {rates['stored'] / TARGET:.2f} x {TARGET:,} spans/s; "
                  f"{rates['stored'] / rates['decode-only'] / 0.5:.2f} x the 0.5 ratio")
        spans, traces, errors = psql(url, "SELECT (SELECT count(*) FROM traces_span), "
                                          "(SELECT count(*) FROM traces_trace), "
                                          "(SELECT coalesce(sum(error_count), 0) "
                                          "FROM traces_trace)").split("|")
        counted = psql(url, "SELECT coalesce(sum(span_count), 0) FROM traces_trace")
        print(f"  in the database: {int(spans):,} spans in {int(traces):,} traces "
              f"({int(errors):,} in error), the traces' span counts add up to {int(counted):,}; "
              f"the answers said {total:,} stored"
              + ("" if int(spans) == int(counted) == total else "  MISMATCH"))
    finally:
        if server:
            server.stop()
        psql(f"{pg}/postgres", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


if __name__ == "__main__":
    main()
