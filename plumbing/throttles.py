"""Requests per second per token on every write of the REST API (docs/limits.md).

WriteRateThrottle (DRF) keeps a token bucket per machine token, per project token, else per
logged-in user or client address; in Redis when REDIS_URL is set so that all server processes
share the budget (RedisBuckets), else in the process (LocalBuckets).
"""

import logging
import threading
import time

from django.conf import settings
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

# GCRA (a token bucket kept as one number: the theoretical arrival time of the next request), in
# one atomic step in Redis so that every server process draws on the same budget.
_GCRA_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return tostring(wait) end
tat = tat + interval
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
return '0'
"""


class LocalBuckets:
    """GCRA in this process (no REDIS_URL: one server process)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.arrivals = {}

    def wait(self, key: str, interval: float, tolerance: float) -> float:
        now = time.monotonic()
        with self.lock:
            tat = max(self.arrivals.get(key, now), now)
            wait = tat - tolerance - now
            if wait > 0:
                return wait
            self.arrivals[key] = tat + interval
            if len(self.arrivals) > 100_000:  # forget clients whose bucket is full again
                self.arrivals = {k: v for k, v in self.arrivals.items() if v > now}
            return 0.0

    def clear(self):
        with self.lock:
            self.arrivals.clear()


class RedisBuckets:
    def __init__(self, url: str, prefix: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self.script = self.client.register_script(_GCRA_LUA)
        self.prefix = f"{prefix}:ratelimit:" if prefix else "ratelimit:"

    def wait(self, key: str, interval: float, tolerance: float) -> float:
        return float(self.script(keys=[self.prefix + key], args=[interval, tolerance]))


_buckets = {}
_buckets_lock = threading.Lock()


def buckets():
    """The bucket store for the current settings (tests switch REDIS_URL)."""
    url = settings.REDIS_URL
    with _buckets_lock:
        if url not in _buckets:
            prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
            _buckets[url] = RedisBuckets(url, prefix) if url else LocalBuckets()
        return _buckets[url]


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class WriteRateThrottle(BaseThrottle):
    """Requests per second on every write (POST, PUT, PATCH, DELETE) of the REST API, per
    credential (`request.auth`, in the bucket its authentication class names with its
    `throttle_scope`: a machine token, a project's token whether in the header or in the legacy
    tracker's body), else per logged-in user or client address. Reads are not throttled. Over
    the budget: 429 with Retry-After.

    Runs after authentication: a request with a wrong token is refused without touching a
    bucket, and the token is never read again here."""

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS:
            return True
        scope, ident = self.identify(request)
        rate = getattr(settings, f"RATE_LIMIT_{scope.upper()}")
        if rate <= 0:
            return True
        burst = getattr(settings, f"RATE_LIMIT_{scope.upper()}_BURST")
        interval = 1.0 / rate
        try:
            wait = buckets().wait(f"{scope}:{ident}", interval, interval * (max(burst, 1) - 1))
        except Exception:  # Redis down: let writes through rather than fail them (logged)
            logger.warning("rate limit not checked: the bucket store failed", exc_info=True)
            return True
        if wait <= 0:
            return True
        who = {"machine_token": "this machine token", "project_token": "this project token",
               "client": "this client"}[scope]
        raise exceptions.Throttled(wait, detail=(
            f"Too many requests from {who}: more than {rate:g} a second "
            f"(RATE_LIMIT_{scope.upper()}, bursts of {burst}: RATE_LIMIT_{scope.upper()}_BURST)."
        ))

    def identify(self, request) -> tuple[str, str]:
        auth = request.auth
        scope = getattr(request.successful_authenticator, "throttle_scope", None)
        if scope is not None and getattr(auth, "pk", None) is not None:
            return scope, f"{type(auth).__name__}:{auth.pk}"
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return "client", f"user:{user.pk}"
        return "client", f"ip:{request.META.get('REMOTE_ADDR', '')}"
