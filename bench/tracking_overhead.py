"""Per-request overhead of request trackers on a trivial Django view, side by side in one run.

    .venv/bin/python bench/tracking_overhead.py [--requests 20000] [--rounds 3]

Variants, each in its own child process (one Django configuration per process), all serving
the same view through Django's WSGI handler in a tight loop (no HTTP parsing noise):
  bare      no tracker
  ours      monitor_request_tracker.django.RequestTrackerMiddleware
  down      the same, its backend a black hole (accepts connections, never answers): the
            app's overhead while the Monitor server is unreachable (queue full, drops counted)
  sentry    sentry-sdk with performance tracing on (traces_sample_rate=1.0)
  seed      rigidanalytics-tracker 2.0.5 (seed 001's published client)
Trackers send to a local receiver that answers 200 to everything. sentry-sdk and the seed tracker
are installed with `pip install --target` into a scratch directory (never into requirements);
a variant whose package does not install is reported as skipped.
Rounds are interleaved (bare, ours, sentry, seed, bare, ...) and the median per variant is
reported, as added µs per request against bare (p50, p99) and throughput as a ratio of bare's,
both in wall time and in process CPU time (every thread's, the trackers' senders included,
counted until their queued requests have gone out).
"""

import argparse
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
VARIANTS = ["bare", "ours", "down", "sentry", "seed"]


# --- child: one variant ---------------------------------------------------------------------------

def child(variant, requests, receiver):
    import django
    from django.conf import settings

    middleware = ["django.middleware.common.CommonMiddleware"]
    extra = {}
    if variant in ("ours", "down"):
        middleware.append("monitor_request_tracker.django.RequestTrackerMiddleware")
    elif variant == "seed":
        middleware.append("rigidanalytics_tracker.middleware.Analytics")
    if variant in ("ours", "down", "seed"):
        extra["RIGID_ANALYTICS"] = {
            "PROJECT_ID": "bench-project", "PROJECT_TOKEN": "bench-token",
            "DEBUG_DISABLE_ANALYTICS": False, "BACKEND_ENDPOINT": receiver + "/tracking/",
        }
    settings.configure(
        DEBUG=False, SECRET_KEY="bench", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
        MIDDLEWARE=middleware, INSTALLED_APPS=[], DATABASES={}, USE_TZ=True, **extra,
    )
    if variant == "sentry":
        import sentry_sdk

        sentry_sdk.init(dsn=receiver.replace("http://", "http://public@") + "/1",
                        traces_sample_rate=1.0)
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.urls import path

    global urlpatterns
    urlpatterns = [path("hello/", lambda request: HttpResponse("hello"), name="hello")]
    handler = WSGIHandler()

    def environ():
        return {"REQUEST_METHOD": "GET", "PATH_INFO": "/hello/", "QUERY_STRING": "a=1",
                "SERVER_NAME": "bench", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(b""), "REMOTE_ADDR": "127.0.0.1",
                "HTTP_USER_AGENT": "bench/1.0", "HTTP_COOKIE": "sessionid=secret"}

    def start_response(status, headers, exc_info=None):
        return None

    for _ in range(2000):  # warm-up: imports, caches, the sender thread
        handler(environ(), start_response)
    time.sleep(2.5)  # let the warm-up's batches go out before CPU time is counted
    times = []
    perf = time.perf_counter_ns
    cpu_started = time.process_time()
    started = perf()
    for _ in range(requests):
        env = environ()
        t0 = perf()
        response = handler(env, start_response)
        response.close()
        times.append(perf() - t0)
    elapsed = (perf() - started) / 1e9
    # The trackers' background threads send what was queued within their flush interval (1 s
    # for ours): their CPU time counts too (process_time covers every thread, and is not
    # inflated by other processes on a loaded machine the way wall time is).
    time.sleep(2.5)
    cpu = time.process_time() - cpu_started
    times.sort()
    print(json.dumps({"p50_us": times[len(times) // 2] / 1000,
                      "p99_us": times[int(len(times) * 0.99)] / 1000,
                      "rps": requests / elapsed, "cpu_us": cpu / requests * 1e6}))
    sys.stdout.flush()
    os._exit(0)  # skip the trackers' exit flush: not part of the per-request cost


class _Empty:
    def read(self, *args):
        return b""


# --- parent ---------------------------------------------------------------------------------------

class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
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
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset of " + ",".join(VARIANTS) + " (bare always runs)")
    args = parser.parse_args()
    install_extras()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver = f"http://127.0.0.1:{server.server_address[1]}"
    black_hole = socket.socket()  # listens, never accepts nor answers: the tracker times out
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(128)
    dead = f"http://127.0.0.1:{black_hole.getsockname()[1]}"
    wanted = {"bare", *args.variants.split(",")}
    variants = [v for v in VARIANTS if v in wanted and available(v)]
    skipped = [v for v in VARIANTS if v in wanted and v not in variants]
    results = {v: [] for v in variants}
    for round_number in range(args.rounds):
        for variant in variants:
            results[variant].append(run_variant(variant, args.requests,
                                                dead if variant == "down" else receiver))
    median = {v: {k: statistics.median(r[k] for r in rs)
                  for k in ("p50_us", "p99_us", "rps", "cpu_us")}
              for v, rs in results.items()}
    bare = median["bare"]
    print(f"Trivial Django view, {args.requests} requests x {args.rounds} interleaved rounds, "
          f"median of rounds (python {sys.version.split()[0]})")
    print(f"{'variant':<8} {'p50 µs':>8} {'p99 µs':>8} {'+p50 µs':>8} {'+p99 µs':>8} "
          f"{'req/s':>9} {'vs bare':>8} {'CPU µs':>8} {'+CPU µs':>8} {'CPU-bound vs bare':>18}")
    for variant, m in median.items():
        print(f"{variant:<8} {m['p50_us']:8.1f} {m['p99_us']:8.1f} "
              f"{m['p50_us'] - bare['p50_us']:8.1f} {m['p99_us'] - bare['p99_us']:8.1f} "
              f"{m['rps']:9.0f} {m['rps'] / bare['rps']:8.3f} {m['cpu_us']:8.1f} "
              f"{m['cpu_us'] - bare['cpu_us']:8.1f} {bare['cpu_us'] / m['cpu_us']:18.3f}")
    print("CPU µs: process CPU time per request, sender threads included (less sensitive to "
          "other load than wall time); CPU-bound vs bare: the throughput ratio of a server that "
          "is CPU-bound, bare CPU / variant CPU.")
    for variant in skipped:
        print(f"{variant:<8} skipped: package did not install")
    print(f"receiver got {Receiver.received} POSTs")
    server.shutdown()


if __name__ == "__main__":
    main()
