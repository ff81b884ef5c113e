"""Per-request cost of request trackers on a trivial Django view, side by side in one run.

    .venv/bin/python bench/tracking_overhead.py [--requests 10000] [--rounds 3] [--variants ours]

The figure that matters is the tracker's CPU time per request: process CPU time (every thread:
the request thread and the tracker's background sender, counted until what the measured requests
queued has been sent) over the measured requests, minus the same figure for the bare view
measured in the same process. Target: at most 10 µs for ours; the run ends with PASS or FAIL.

Variants, each in its own child process (one Django configuration per process), all serving the
same view through Django's WSGI handler in a tight loop (no HTTP parsing noise):
  ours      monitor_request_tracker.django.RequestTrackerMiddleware
  down      the same, its backend a black hole (accepts connections, never answers): the app's
            cost while the Monitor server is unreachable (queue full, drops counted)
  sentry    sentry-sdk with performance tracing on (traces_sample_rate=1.0)
  seed      rigidanalytics-tracker 2.0.5 (the legacy tracker, docs/protocols.md)
Each child builds two handlers, the bare view (CommonMiddleware only) and the tracked one, and
alternates blocks of requests between them, so both see the same machine load; after each
tracked block it waits (sleeping, which costs no CPU) until the tracker has sent what the block
queued, and that sending is counted in the block. sentry-sdk patches Django process-wide, so its
child measures its bare blocks first, then initialises sentry-sdk. Rounds interleave the variants
and the median of rounds is reported.
Trackers send to a local receiver in this (parent) process that answers 200 to everything.
sentry-sdk and the legacy tracker are installed with `pip install --target` into a scratch
directory (never into requirements); a variant whose package does not install is skipped.
"""

import argparse
import gc
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRA = Path(tempfile.gettempdir()) / "monitor-bench-extra"
VARIANTS = ["ours", "down", "sentry", "seed"]
LIMIT_US = 10.0
# sentry-sdk and the legacy tracker cost hundreds of µs per request: fewer requests measure them
# well enough and keep the run short.
SHARE = {"ours": 1.0, "down": 1.0, "sentry": 0.1, "seed": 0.25}
BLOCKS = 5


# --- child: one variant ---------------------------------------------------------------------------

def child(variant, requests, receiver):
    import django
    from django.conf import settings

    bare_middleware = ["django.middleware.common.CommonMiddleware"]
    tracked_middleware = list(bare_middleware)
    extra = {}
    if variant in ("ours", "down"):
        tracked_middleware.append("monitor_request_tracker.django.RequestTrackerMiddleware")
    elif variant == "seed":
        tracked_middleware.append("rigidanalytics_tracker.middleware.Analytics")
    if variant in ("ours", "down", "seed"):
        extra["RIGID_ANALYTICS"] = {
            "PROJECT_ID": "bench-project", "PROJECT_TOKEN": "bench-token",
            "DEBUG_DISABLE_ANALYTICS": False, "BACKEND_ENDPOINT": receiver + "/tracking/",
        }
    settings.configure(
        DEBUG=False, SECRET_KEY="bench", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
        MIDDLEWARE=bare_middleware, INSTALLED_APPS=[], DATABASES={}, USE_TZ=True, **extra,
    )
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.urls import path

    global urlpatterns
    urlpatterns = [path("hello/", lambda request: HttpResponse("hello"), name="hello")]
    bare = WSGIHandler()

    def environ():
        return {"REQUEST_METHOD": "GET", "PATH_INFO": "/hello/", "QUERY_STRING": "a=1",
                "SERVER_NAME": "bench", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(b""), "REMOTE_ADDR": "127.0.0.1",
                "HTTP_USER_AGENT": "bench/1.0", "HTTP_COOKIE": "sessionid=secret"}

    def start_response(status, headers, exc_info=None):
        return None

    def block(handler, count, drain):
        times = []
        perf = time.perf_counter_ns
        cpu_started = time.process_time()
        started = perf()
        for _ in range(count):
            env = environ()
            t0 = perf()
            handler(env, start_response).close()
            times.append(perf() - t0)
        elapsed = (perf() - started) / 1e9
        drain()
        return times, elapsed, time.process_time() - cpu_started

    def nothing():
        pass

    if variant == "sentry":
        drain = nothing
    else:
        settings.MIDDLEWARE = tracked_middleware
        tracked = WSGIHandler()
        drain = drainer(variant)
    per_block = max(1, requests // BLOCKS)
    results = {"bare": [[], 0.0, 0.0], "tracked": [[], 0.0, 0.0]}

    def measure(kind, handler, drain_after):
        times, elapsed, cpu = block(handler, per_block, drain_after)
        total = results[kind]
        total[0].extend(times)
        total[1] += elapsed
        total[2] += cpu

    for _ in range(max(200, per_block // 2)):  # warm-up: imports, caches
        bare(environ(), start_response)
    if variant == "sentry":
        for _ in range(BLOCKS):
            measure("bare", bare, nothing)
        import sentry_sdk

        sentry_sdk.init(dsn=receiver.replace("http://", "http://public@") + "/1",
                        traces_sample_rate=1.0)
        tracked = WSGIHandler()
        drain = drainer(variant)
    for _ in range(max(200, per_block // 2)):  # warm-up: the tracker's thread and caches
        tracked(environ(), start_response)
    drain()
    for _ in range(BLOCKS):
        if variant != "sentry":
            measure("bare", bare, nothing)
        measure("tracked", tracked, drain)
    out = {}
    for kind, (times, elapsed, cpu) in results.items():
        times.sort()
        out[kind] = {"p50_us": times[len(times) // 2] / 1000,
                     "p99_us": times[int(len(times) * 0.99)] / 1000,
                     "rps": len(times) / elapsed, "cpu_us": cpu / len(times) * 1e6}
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # skip the trackers' exit flush: not part of the per-request cost


def drainer(variant):
    """A function that returns once the variant's tracker has sent what is queued (sleeping,
    so that waiting costs no CPU); for a dead backend it returns at once."""
    if variant == "ours":
        from monitor_request_tracker.sender import _senders

        def drain():  # wakes the sender thread and waits (sleeping) until it has sent all
            for sender in list(_senders):
                sender.flush(timeout=10)
        return drain
    if variant == "sentry":
        import sentry_sdk

        return lambda: sentry_sdk.flush(timeout=10)
    if variant == "seed":
        workers = [o for o in gc.get_objects() if type(o).__name__ == "BackgroundWorker"]

        def drain():
            for worker in workers:
                worker._timed_queue_join(10)
        return drain
    return lambda: None


# --- parent ---------------------------------------------------------------------------------------

class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One segment per answer, sent at once: headers and body written apart would meet Nagle's
    # algorithm and the client's delayed ACK (40 ms per POST on keep-alive connections).
    disable_nagle_algorithm = True
    wbufsize = 1 << 16
    received = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Receiver.received += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def install_extras():
    if (EXTRA / "sentry_sdk").exists() and (EXTRA / "rigidanalytics_tracker").exists():
        return
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(EXTRA), "sentry-sdk", "rigidanalytics-tracker==2.0.5"],
                   check=False, capture_output=True)


def available(variant):
    if variant == "sentry":
        return (EXTRA / "sentry_sdk").exists()
    if variant == "seed":
        return (EXTRA / "rigidanalytics_tracker").exists()
    return True


def run_variant(variant, requests, receiver):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "bench"), str(ROOT / "clients/request_tracker/src"), str(EXTRA)])}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-c",
         f"import tracking_overhead as b; b.child({variant!r}, {requests}, {receiver!r})"],
        env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000,
                        help="tracked requests per variant and round (sentry and seed: fewer)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset of " + ",".join(VARIANTS))
    args = parser.parse_args()
    install_extras()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver = f"http://127.0.0.1:{server.server_address[1]}"
    black_hole = socket.socket()  # listens, never accepts nor answers: the tracker times out
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(128)
    dead = f"http://127.0.0.1:{black_hole.getsockname()[1]}"
    wanted = set(args.variants.split(","))
    variants = [v for v in VARIANTS if v in wanted and available(v)]
    skipped = [v for v in VARIANTS if v in wanted and v not in variants]
    results = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant in variants:
            results[variant].append(run_variant(
                variant, max(BLOCKS, int(args.requests * SHARE[variant])),
                dead if variant == "down" else receiver))

    def med(variant, kind, key):
        return statistics.median(r[kind][key] for r in results[variant])

    def med_added(variant, key):  # paired within each child, then the median of rounds
        return statistics.median(r["tracked"][key] - r["bare"][key] for r in results[variant])

    def med_ratio(variant, key):
        return statistics.median(r["tracked"][key] / r["bare"][key] for r in results[variant])

    print(f"Trivial Django view through Django's WSGI handler, {args.requests} tracked requests "
          f"per variant x {args.rounds} interleaved rounds (sentry x{SHARE['sentry']}, seed "
          f"x{SHARE['seed']}), median of rounds, each against the bare view in the same process "
          f"(python {sys.version.split()[0]})")
    print(f"{'variant':<8} {'bare CPU µs':>11} {'CPU µs':>8} {'+CPU µs':>8} {'CPU-bound x':>11} "
          f"{'p50 µs':>8} {'+p50 µs':>8} {'+p99 µs':>8} {'req/s x':>8}")
    for variant in variants:
        print(f"{variant:<8} {med(variant, 'bare', 'cpu_us'):11.1f} "
              f"{med(variant, 'tracked', 'cpu_us'):8.1f} {med_added(variant, 'cpu_us'):8.1f} "
              f"{1 / med_ratio(variant, 'cpu_us'):11.3f} {med(variant, 'tracked', 'p50_us'):8.1f} "
              f"{med_added(variant, 'p50_us'):8.1f} {med_added(variant, 'p99_us'):8.1f} "
              f"{med_ratio(variant, 'rps'):8.3f}")
    print("+CPU µs: process CPU time per request (request thread and the tracker's sender, until "
          "sent) minus the bare view's; CPU-bound x: a CPU-bound server's throughput against "
          "bare (bare CPU / variant CPU); req/s x: wall-clock throughput against bare (swings "
          "with the machine's load).")
    for variant in skipped:
        print(f"{variant:<8} skipped: package did not install")
    if "ours" in variants:
        added = med_added("ours", "cpu_us")
        rounds = ", ".join(f"{r['tracked']['cpu_us'] - r['bare']['cpu_us']:.1f}"
                           for r in results["ours"])
        print(f"ours: +{added:.1f} µs CPU per request (rounds: {rounds}); limit {LIMIT_US:.0f} "
              f"µs: {'PASS' if added <= LIMIT_US else 'FAIL'}")
    print(f"receiver got {Receiver.received} POSTs")
    server.shutdown()


if __name__ == "__main__":
    main()
