"""Settings for the monitoring monolith, read entirely from the environment.

Every variable is listed in the README's table. A value that cannot be parsed stops the
process at startup with ImproperlyConfigured naming the variable, so a typo never turns into a
silently different configuration.
"""

import json
import os
import tempfile
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from environs import Env, EnvError
from marshmallow.validate import OneOf, Range

BASE_DIR = Path(__file__).resolve().parent.parent

env = Env(expand_vars=False)

# Development defaults that `make run` writes (DEBUG=True, a generated SECRET_KEY), so that
# manage.py commands typed in another shell behave as the server does. Variables of the real
# environment win over the file. ENV_FILE names another file; empty reads none (the tests, whose
# settings come from pytest.ini alone, and production, which need not rely on the file's absence).
ENV_FILE = os.environ.get("ENV_FILE", str(BASE_DIR / ".env"))
if ENV_FILE:
    try:
        env.read_env(ENV_FILE, recurse=False, override=False)
    except (OSError, ValueError) as error:
        raise ImproperlyConfigured(f"ENV_FILE {ENV_FILE!r} cannot be read: {error}") from None


def _read(method, name, *args, **kwargs):
    try:
        return getattr(env, method)(name, *args, **kwargs)
    except EnvError as error:
        raise ImproperlyConfigured(str(error)) from None


def _csv(name, default=""):
    raw = _read("str", name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = _read("bool", "DEBUG", False)

SECRET_KEY = _read("str", "SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. It is required when DEBUG is off; set SECRET_KEY to a long "
            "random string, or for development run `make run` once: it writes a .env with "
            "DEBUG=True and a generated SECRET_KEY."
        )
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"

ALLOWED_HOSTS = _csv("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = _csv("CSRF_TRUSTED_ORIGINS")
for _origin in CSRF_TRUSTED_ORIGINS:
    if "://" not in _origin:
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS: {_origin!r} needs a scheme, e.g. https://{_origin}"
        )

# Anonymous visitors may read dashboards, REST read endpoints and live sockets when this is on.
DASHBOARDS_PUBLIC = _read("bool", "DASHBOARDS_PUBLIC", False)


INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "django_tasks_db",
    "trace_project.apps.ProjectConfig",
    "plumbing",
    "traces",
    "tm_api",
    "tracking",
    "notifications",
    "idempotency",
    "accounts",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "plumbing.library_internals.whitenoise_static.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers the login of a locked-out account or address.
    "axes.middleware.AxesMiddleware",
]

# Machine traffic (token-authenticated ingest: machine reports, tracking batches and the legacy
# tracker route, OTLP) takes a lean path (plumbing/ingest_path.py): requests whose path
# starts with one of INGEST_PATHS run through INGEST_MIDDLEWARE alone, async-native, with no
# session, CSRF, messages or login machinery. Every other path keeps MIDDLEWARE.
INGEST_PATHS = [
    "/tm_api/dry_run/", "/tm_api/test_start/", "/tm_api/test_stop/", "/tm_api/batch/",
    "/tm_api/junit/",
    "/api/tracking/ingest/", "/tracking/",
    "/v1/",  # OTLP/HTTP (/v1/traces)
    "/api/v2/spans",  # Zipkin v2
]
INGEST_MIDDLEWARE = ["plumbing.ingest_path.SecurityHeaders"]
# Websockets of trace programs (no login) skip channels' cookie, session and user lookup (two
# database hops per socket, one socket per trace); the pages' sockets keep them.
INGEST_WEBSOCKET_PATHS = ["/ws/trace/", "/ws/bench/noop/"]

ROOT_URLCONF = "trace_project.urls"
ASGI_APPLICATION = "trace_project.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


# Database: DATABASE_URL, or DB_DEFAULT (a JSON DATABASES entry, as an earlier deployment
# set it: docs/protocols.md), or a SQLite file.
SQLITE_OPTIONS = {
    # WAL lets the live pages read while ingestion writes; IMMEDIATE avoids lock upgrades
    # failing half-way through a transaction; timeout waits for a writer instead of erroring.
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}

if os.environ.get("DATABASE_URL") and os.environ.get("DB_DEFAULT"):
    raise ImproperlyConfigured("DATABASE_URL and DB_DEFAULT are both set; set only one of them.")

if os.environ.get("DB_DEFAULT"):
    try:
        _database = json.loads(os.environ["DB_DEFAULT"])
    except ValueError as error:
        raise ImproperlyConfigured(f"DB_DEFAULT is not valid JSON: {error}") from None
    if not isinstance(_database, dict) or "ENGINE" not in _database:
        raise ImproperlyConfigured(
            "DB_DEFAULT must be a JSON object with at least ENGINE and NAME (a DATABASES entry)."
        )
else:
    _database = _read(
        "dj_db_url", "DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=0
    )

if _database["ENGINE"] == "django.db.backends.sqlite3":
    _database["OPTIONS"] = {**SQLITE_OPTIONS, **_database.get("OPTIONS", {})}
    # A file, not memory, so that a real server started by a test can share the test database.
    _database.setdefault("TEST", {}).setdefault(
        "NAME", os.path.join(tempfile.gettempdir(), f"monitor-test-{os.getpid()}.sqlite3")
    )
elif _database["ENGINE"] == "django.db.backends.postgresql":
    _options = _database.setdefault("OPTIONS", {})
    # Fail fast with a 503 instead of hanging while PostgreSQL is unreachable (docs/outages.md):
    # a new connection gives up after DATABASE_CONNECT_TIMEOUT seconds, a request waiting for a
    # pooled one after DATABASE_POOL_TIMEOUT seconds.
    _options.setdefault("connect_timeout", _read("int", "DATABASE_CONNECT_TIMEOUT", 5))
    _pool_size = _read("int", "DATABASE_POOL_SIZE", 20)
    if _pool_size > 0 and "pool" not in _options:
        # A connection per request costs milliseconds; under daphne, requests and consumers
        # take pooled ones. A connection broken by a PostgreSQL restart fails the request that
        # takes it (503) and is thrown away. While PostgreSQL is down the pool tries to connect
        # again with a doubling delay; it starts over after DATABASE_POOL_RECONNECT_TIMEOUT
        # seconds (psycopg_pool's default, 300 s, let the delay grow to minutes, and so the
        # time to recover after PostgreSQL is back).
        _options["pool"] = {
            "min_size": 1, "max_size": _pool_size,
            "timeout": _read("float", "DATABASE_POOL_TIMEOUT", 2.0),
            "reconnect_timeout": _read("float", "DATABASE_POOL_RECONNECT_TIMEOUT", 5.0),
        }
    if "pool" in _options:
        _database["CONN_MAX_AGE"] = 0  # pooling replaces persistent connections
    else:
        _database.setdefault("CONN_HEALTH_CHECKS", True)

DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# Redis: the channel layer and the cache. Without REDIS_URL everything stays in this process.
REDIS_URL = _read("str", "REDIS_URL", "")
if REDIS_URL:
    if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(
            f"REDIS_URL must start with redis://, rediss:// or unix://, got {REDIS_URL!r}"
        )
    # The pub/sub layer: live frames go straight to the processes holding the sockets. The core
    # layer queues each process's frames in one Redis list of bounded capacity (frames dropped
    # under load) and, with redis-py 8's 5 s socket timeout, closed idle sockets every few
    # seconds; a live page needs neither queueing nor persistence.
    # plumbing.library_internals.channels_redis_pubsub.PubSubChannelLayer is channels-redis's
    # pub/sub layer made to survive Redis outages (docs/outages.md): each Redis call of the layer
    # gives up after REDIS_TIMEOUT seconds, and while Redis is away it tries again every
    # REDIS_RETRY seconds.
    REDIS_TIMEOUT = _read("float", "REDIS_TIMEOUT", 2.0)
    REDIS_RETRY = _read("float", "REDIS_RETRY", 0.25)
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "plumbing.library_internals.channels_redis_pubsub.PubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_connect_timeout": REDIS_TIMEOUT}],
                "prefix": _read("str", "REDIS_PREFIX", "monitor"),
                "timeout": REDIS_TIMEOUT,
                "retry": REDIS_RETRY,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": _read("str", "REDIS_PREFIX", "monitor"),
        }
    }
else:
    CHANNEL_LAYERS = {"default": {
        "BACKEND": "plumbing.library_internals.channels_memory.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# Password guessing (/login/ and the admin's login) is throttled by django-axes: after
# LOGIN_FAILURE_LIMIT wrong passwords for one account (from anywhere) or from one address (for
# any account), that account or address is refused for LOGIN_LOCKOUT_MINUTES, with a page that
# says so and a Retry-After. Its database handler shares the count across server processes.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _read("int", "LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=_read("int", "LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # failures are counted; successful logins are not logged here
AXES_LOCKOUT_CALLABLE = "plumbing.security.login_locked_out"
# The address daphne saw, or (with --proxy-headers behind the proxy) the one it forwarded. Set
# explicitly: were django-ipware ever installed, axes would otherwise trust X-Forwarded-For
# headers a client can write itself, and pick a new address per guess.
AXES_CLIENT_IP_CALLABLE = "plumbing.security.client_address"
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = _read("str", "TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Hashed, compressed files (needs `collectstatic` first) in production; served straight from the
# apps' static folders otherwise (make run, tests).
STATIC_MANIFEST = _read("bool", "STATIC_MANIFEST", not DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if STATIC_MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST

# Mail: console output unless EMAIL_URL (smtp://user:password@host:587/?tls=True) is set.
_email = _read("dj_email_url", "EMAIL_URL", "console:")
if "EMAIL_BACKEND" not in _email:
    raise ImproperlyConfigured(
        "EMAIL_URL has an unknown scheme; use smtp://, submission://, console: or dummy:"
    )
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email["EMAIL_HOST"]
EMAIL_PORT = _email["EMAIL_PORT"]
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"]
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"]
EMAIL_USE_TLS = _email["EMAIL_USE_TLS"]
EMAIL_USE_SSL = _email["EMAIL_USE_SSL"]
DEFAULT_FROM_EMAIL = _read("str", "DEFAULT_FROM_EMAIL", "monitor@localhost")


# HTTPS. SECURE_HTTPS=True turns on everything a site served only over HTTPS wants; each piece
# can still be set on its own.
SECURE_HTTPS = _read("bool", "SECURE_HTTPS", False)
SECURE_SSL_REDIRECT = _read("bool", "SECURE_SSL_REDIRECT", SECURE_HTTPS)
SESSION_COOKIE_SECURE = _read("bool", "SESSION_COOKIE_SECURE", SECURE_HTTPS)
CSRF_COOKIE_SECURE = _read("bool", "CSRF_COOKIE_SECURE", SECURE_HTTPS)
SECURE_HSTS_SECONDS = _read("int", "SECURE_HSTS_SECONDS", 31536000 if SECURE_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _read("bool", "SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_HTTPS)
SECURE_HSTS_PRELOAD = _read("bool", "SECURE_HSTS_PRELOAD", SECURE_HTTPS)
# Behind a TLS-terminating proxy (docker-compose's Caddy) that sets X-Forwarded-Proto.
if _read("bool", "TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Load balancers probe /healthz over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]


REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "plumbing.schema.AutoSchema",  # + the error answers
    # A personal API token (`Authorization: Bearer pat_…`, accounts/auth.py) first, so that a
    # script's token decides even if a cookie rides along; else the browser's session. Every API
    # view that names no classes of its own takes both: the ingest views name theirs.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.auth.PersonalTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["plumbing.access.DashboardReader"],
    "DEFAULT_PAGINATION_CLASS": "plumbing.pagination.PageNumberEnvelope",
    "DEFAULT_PARSER_CLASSES": [  # DRF's three, with deep JSON nesting a 400 (not a 500)
        "plumbing.rest_json.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 10,
    "EXCEPTION_HANDLER": "plumbing.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": (
        ["plumbing.rest_json.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"]
        if DEBUG
        else ["plumbing.rest_json.JSONRenderer"]
    ),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Monitor API",
    "DESCRIPTION": (
        "Traces, test-machine progress and request metrics in one service. Every error answer "
        "has the shape {detail, code, errors?} (see the Error schema)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's assets come from the installed sidecar package, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # A test's outcome and each of its attempts take the same choices: one schema, one name.
    # One name per choice set of a field name ("status": a trace's, a test's).
    "ENUM_NAME_OVERRIDES": {"OutcomeEnum": "tm_api.outcomes.OUTCOMES",
                            "TestStatusEnum": "tm_api.status.PRIORITY",
                            "StatusEnum": "traces.models.Trace.STATUSES"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",  # drf-spectacular's default
        "idempotency.schema.document_replays",
    ],
}


LOG_LEVEL = _read(
    "str", "LOG_LEVEL", "INFO",
    validate=OneOf(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
).upper()
DEBUG_SQL_QUERY = _read("bool", "DEBUG_SQL_QUERY", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {
            # trace_project.apps turns on statement logging even when DEBUG is off.
            "level": "DEBUG" if DEBUG_SQL_QUERY else "INFO",
        },
        "apscheduler": {"level": "WARNING"},
    },
}

CSRF_FAILURE_VIEW = "plumbing.errors.csrf_failure"


# --- partitioned tables (PostgreSQL) ------------------------------------------------------------
# Spans and raw request rows are partitioned by time on PostgreSQL (plumbing/partitions.py):
# retention drops whole partitions. Each partition covers this many days (from midnight UTC)...
PARTITION_DAYS = _read("int", "PARTITION_DAYS", 1, validate=Range(min=1))
# ...and the create_partitions job keeps partitions made this many days ahead (rows no
# partition covers go to each table's DEFAULT partition, so nothing is refused meanwhile).
PARTITION_AHEAD_DAYS = _read("int", "PARTITION_AHEAD_DAYS", 7, validate=Range(min=0))


# --- notifications and scheduled jobs -----------------------------------------------------------
# Background work goes through django-tasks' database backend: a task row is written in the same
# transaction as the change that caused it, and `manage.py db_worker` runs it.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
NOTIFY_COOLDOWN_SECONDS = _read("int", "NOTIFY_COOLDOWN_SECONDS", 600)
# server_error notifications in total, whatever the path: at most this many per window.
NOTIFY_SERVER_ERROR_MAX = _read("int", "NOTIFY_SERVER_ERROR_MAX", 5)
NOTIFY_SERVER_ERROR_WINDOW_SECONDS = _read("int", "NOTIFY_SERVER_ERROR_WINDOW_SECONDS", 600)
NOTIFY_TIMEOUT_SECONDS = _read("float", "NOTIFY_TIMEOUT_SECONDS", 10.0)
NOTIFY_MAX_ATTEMPTS = _read("int", "NOTIFY_MAX_ATTEMPTS", 8)
NOTIFY_RETRY_BASE_SECONDS = _read("float", "NOTIFY_RETRY_BASE_SECONDS", 5.0)
NOTIFY_RETRY_MAX_SECONDS = _read("float", "NOTIFY_RETRY_MAX_SECONDS", 3600.0)
NOTIFY_RETENTION_DAYS = _read("int", "NOTIFY_RETENTION_DAYS", 90)
# project_degraded: a tracked project over either limit during the last window (with at least
# the minimum of requests in it, so one failing request at night does not page anyone).
PROJECT_ALERT_ERROR_RATE = _read("float", "PROJECT_ALERT_ERROR_RATE", 0.05)
PROJECT_ALERT_P95_MS = _read("float", "PROJECT_ALERT_P95_MS", 1000.0)
PROJECT_ALERT_WINDOW_MINUTES = _read("int", "PROJECT_ALERT_WINDOW_MINUTES", 5)
PROJECT_ALERT_MIN_REQUESTS = _read("int", "PROJECT_ALERT_MIN_REQUESTS", 20)
# Stored traces older than this are deleted by the prune_old_data job.
TRACE_RETENTION_DAYS = _read("int", "TRACE_RETENTION_DAYS", 30)
# The address pages link to in notifications (e.g. https://monitor.example.com).
SITE_URL = _read("str", "SITE_URL", "http://127.0.0.1:8000").rstrip("/")


# --- idempotency keys ---------------------------------------------------------------------------
# How long the answer to a write sent with an Idempotency-Key is kept for its retries (idempotency/).
IDEMPOTENCY_KEY_HOURS = _read("int", "IDEMPOTENCY_KEY_HOURS", 24)


# --- traces -------------------------------------------------------------------------------------
# Limits of one websocket frame of trace messages (docs/traces.md); bigger frames are refused.
TRACE_MAX_FRAME_BYTES = _read("int", "TRACE_MAX_FRAME_BYTES", 1_048_576, validate=Range(min=1))
TRACE_MAX_FRAME_MESSAGES = _read("int", "TRACE_MAX_FRAME_MESSAGES", 10_000, validate=Range(min=1))
# Spans one trace may have; a frame that would pass it is refused (nothing of it stored).
TRACE_MAX_SPANS = _read("int", "TRACE_MAX_SPANS", 100_000, validate=Range(min=1))
# Mounts ws/bench/noop/<id>, a consumer that only parses JSON, and /v1/bench/decode-only/traces,
# OTLP/HTTP decoded and not stored: the benchmarks' baselines. Never on in production.
TRACE_BENCH_NOOP = _read("bool", "TRACE_BENCH_NOOP", False)
# An OTLP or Zipkin trace has no end message: it is complete once its root span has arrived and
# no span came for this many seconds (SDKs export a trace's spans over several batches).
TRACE_OTLP_QUIET_SECONDS = _read("float", "TRACE_OTLP_QUIET_SECONDS", 30.0,
                                 validate=Range(min=0))
# OTLP/HTTP and Zipkin bodies: at most this many bytes, uncompressed (413 above it).
TRACE_OTLP_MAX_BODY_BYTES = _read("int", "TRACE_OTLP_MAX_BODY_BYTES", 16 * 1024 * 1024,
                                  validate=Range(min=1))
# OTLP/HTTP and Zipkin requests one server process lets wait for a turn to write; above it the
# answer is 503 with Retry-After (exporters retry it).
TRACE_OTLP_MAX_WAITING = _read("int", "TRACE_OTLP_MAX_WAITING", 256, validate=Range(min=0))
# Threads (each with its own database connection) storing trace frames in each server process.
TRACE_INGEST_THREADS = _read("int", "TRACE_INGEST_THREADS", 8, validate=Range(min=1, max=64))


# --- tm_api -------------------------------------------------------------------------------------
# Machines may post dry runs, starts and stops without a token (as existing test runners do): on in
# development (make run sets DEBUG=True), off in production, where a missing token is a 401.
TM_ALLOW_ANONYMOUS_MACHINES = _read("bool", "TM_ALLOW_ANONYMOUS_MACHINES", DEBUG)
# Zone of machine timestamps sent without one ("2018-12-30 13:01:57.461401").
TM_CLIENT_TIME_ZONE = _read("str", "TM_CLIENT_TIME_ZONE", "UTC")
try:
    import zoneinfo as _zoneinfo

    _zoneinfo.ZoneInfo(TM_CLIENT_TIME_ZONE)
except (ValueError, _zoneinfo.ZoneInfoNotFoundError):
    raise ImproperlyConfigured(
        f"TM_CLIENT_TIME_ZONE: {TM_CLIENT_TIME_ZONE!r} is not a time zone name (e.g. Europe/Warsaw)"
    ) from None
# A run whose machine reports nothing for this long ends: its ongoing tests become unknown.
TM_SILENCE_MINUTES = _read("int", "TM_SILENCE_MINUTES", 15)
# The home page calls a machine silent when its run has gone this long without a report (before
# TM_SILENCE_MINUTES ends the run).
OVERVIEW_SILENT_SECONDS = _read("int", "OVERVIEW_SILENT_SECONDS", 120)
# Runs (with their tests and scripts) older than this are deleted by the prune_old_data job.
TM_RUN_RETENTION_DAYS = _read("int", "TM_RUN_RETENTION_DAYS", 180)
# Seconds a server process keeps a machine token it looked up; a token revoked elsewhere (another
# process, manage.py machine_token revoke) is refused by every process within this time. 0: off.
TM_TOKEN_CACHE_SECONDS = _read("float", "TM_TOKEN_CACHE_SECONDS", 10.0)
# Threads per server process that run machine reports (dry run, start, stop), each with a pooled
# database connection while it works; keep it below DATABASE_POOL_SIZE. 0: Django's own threads.
TM_WRITE_THREADS = _read("int", "TM_WRITE_THREADS", 4)
# Flaky tests (docs/tm.md, "Flaky tests"): a test is flaky when it passed and failed on one
# commit, or when its outcome flipped at least TM_FLAKY_FLIPS times over its last TM_FLAKY_RUNS
# results on a branch; only runs received in the last TM_FLAKY_DAYS days are looked at.
TM_FLAKY_FLIPS = _read("int", "TM_FLAKY_FLIPS", 3, validate=Range(min=1))
TM_FLAKY_RUNS = _read("int", "TM_FLAKY_RUNS", 20, validate=Range(min=2, max=1000))
TM_FLAKY_DAYS = _read("int", "TM_FLAKY_DAYS", 30, validate=Range(min=1, max=3650))


# --- tracking -----------------------------------------------------------------------------------
# Raw request rows older than this are deleted by `manage.py prune_request_metrics` (rollups stay).
TRACKING_RAW_RETENTION_DAYS = _read("int", "TRACKING_RAW_RETENTION_DAYS", 30)
# Per-minute rollup cells older than this are deleted by the compact_rollups job; hour and day
# cells stay, so older windows are answered at hour resolution.
TRACKING_MINUTE_ROLLUP_DAYS = _read("int", "TRACKING_MINUTE_ROLLUP_DAYS", 30)
# Threads per server process that store ingest batches on PostgreSQL (0: Django's one sync thread);
# as many ingest requests run at once there (one at a time on SQLite).
TRACKING_INGEST_THREADS = _read("int", "TRACKING_INGEST_THREADS", 4)
# A burst of ingest requests waits its turn (tracking/ingest_queue.py): the legacy tracker never
# retries. 429 with Retry-After only for a request that finds this many already waiting in the
# server process, or that waited this many seconds.
TRACKING_INGEST_MAX_WAITING = _read("int", "TRACKING_INGEST_MAX_WAITING", 1000)
TRACKING_INGEST_MAX_WAIT_SECONDS = _read("float", "TRACKING_INGEST_MAX_WAIT_SECONDS", 30.0)
# Largest batch accepted by the batch endpoint, in events and in uncompressed bytes.
TRACKING_MAX_BATCH_EVENTS = _read("int", "TRACKING_MAX_BATCH_EVENTS", 5000)
TRACKING_MAX_BATCH_BYTES = _read("int", "TRACKING_MAX_BATCH_BYTES", 16 * 1024 * 1024)
# Seconds a server process keeps a project it looked up by its token (request metrics, OTLP,
# Zipkin); a token rotated elsewhere (another process, manage.py rotate_project_token) is refused
# by every process within this time. 0: off.
PROJECT_TOKEN_CACHE_SECONDS = _read("float", "PROJECT_TOKEN_CACHE_SECONDS", 10.0)
# Live dashboard frames per project and server process: at most one per this many seconds.
TRACKING_LIVE_MIN_INTERVAL = _read("float", "TRACKING_LIVE_MIN_INTERVAL", 0.5)


# Live pages: each page's socket group gets at most one message per this many seconds, with the
# last state of everything that changed meanwhile (plumbing/publisher.py). A change after a
# quiet spell goes out at once.
LIVE_MIN_INTERVAL = _read("float", "LIVE_MIN_INTERVAL", 0.1)


# --- limits -------------------------------------------------------------------------------------
# What one client may send (docs/limits.md; enforced by plumbing/body_limit.py,
# websocket_limits.py and throttles.py). 0 turns a limit off. The defaults are far above what
# existing clients and this project's send.


def _rate(name: str, rate: float, burst_name: str, burst: int) -> tuple[float, int]:
    """A token bucket's two settings: `rate` per second (0 = off) and bursts of `burst`."""
    return (_read("float", name, rate, validate=Range(min=0)),
            _read("int", burst_name, burst, validate=Range(min=1)))


# Largest request body of any HTTP request, in bytes: 413 above it. Above TRACKING_MAX_BATCH_BYTES
# so that an uncompressed batch of the largest size still fits.
HTTP_MAX_BODY_BYTES = _read("int", "HTTP_MAX_BODY_BYTES", 20 * 1024 * 1024, validate=Range(min=0))
# Django's own check of request.body (a bare 400) agrees with it instead of cutting at 2.5 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = HTTP_MAX_BODY_BYTES or None
# A request's line and headers must arrive within this many seconds of its first byte: 408 and
# closed otherwise (slow-header clients; plumbing/library_internals/daphne_requests.py).
HTTP_HEADER_TIMEOUT_SECONDS = _read("float", "HTTP_HEADER_TIMEOUT_SECONDS", 20.0,
                                    validate=Range(min=0.1))
# Largest frame a browser live socket takes (they send nothing): closed with 1009 above it. Trace
# ingest sockets use TRACE_MAX_FRAME_BYTES; daphne's --websocket-max-message-size (1 MiB by
# default) caps every socket before the application sees a frame.
WEBSOCKET_MAX_FRAME_BYTES = _read("int", "WEBSOCKET_MAX_FRAME_BYTES", 65_536, validate=Range(min=0))
# Messages per second on one websocket connection (a token bucket: this rate, bursts of
# WEBSOCKET_MESSAGE_BURST); over it the socket is closed with 4029.
WEBSOCKET_MESSAGES_PER_SECOND, WEBSOCKET_MESSAGE_BURST = _rate(
    "WEBSOCKET_MESSAGES_PER_SECOND", 1000.0, "WEBSOCKET_MESSAGE_BURST", 5000)
# Open websockets per client address, and per Authorization header presented, in each server
# process; one more is closed with 4029.
WEBSOCKET_MAX_CONNECTIONS_PER_CLIENT = _read("int", "WEBSOCKET_MAX_CONNECTIONS_PER_CLIENT", 1000,
                                             validate=Range(min=0))
# Writes (POST/PUT/PATCH/DELETE) per second through the REST API, as token buckets shared by all
# server processes through Redis (REDIS_URL) or kept in the process: per machine token
# (tm_api), per project token (tracking ingest; the legacy tracker posts one request per tracked
# request), per logged-in user or client address for the rest (anonymous machines in development).
RATE_LIMIT_MACHINE_TOKEN, RATE_LIMIT_MACHINE_TOKEN_BURST = _rate(
    "RATE_LIMIT_MACHINE_TOKEN", 200.0, "RATE_LIMIT_MACHINE_TOKEN_BURST", 2000)
RATE_LIMIT_PROJECT_TOKEN, RATE_LIMIT_PROJECT_TOKEN_BURST = _rate(
    "RATE_LIMIT_PROJECT_TOKEN", 2000.0, "RATE_LIMIT_PROJECT_TOKEN_BURST", 10_000)
RATE_LIMIT_CLIENT, RATE_LIMIT_CLIENT_BURST = _rate(
    "RATE_LIMIT_CLIENT", 100.0, "RATE_LIMIT_CLIENT_BURST", 1000)
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["plumbing.throttles.WriteRateThrottle"]
