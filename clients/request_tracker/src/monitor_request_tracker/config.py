"""RIGID_ANALYTICS, read exactly like the legacy tracker (rigidanalytics-tracker) did, with its
empty-endpoint bug fixed.

    RIGID_ANALYTICS = {
        "PROJECT_ID": os.environ["RA_PROJECT_ID"],
        "PROJECT_TOKEN": os.environ["RA_PROJECT_TOKEN"],
        "DEBUG_DISABLE_ANALYTICS": False,
        "BACKEND_ENDPOINT": os.environ.get("RA_BACKEND_ENDPOINT", ""),
    }

- A key missing (or empty) in the dict falls back to the environment: RA_PROJECT_ID,
  RA_PROJECT_TOKEN, RA_BACKEND_ENDPOINT.
- An empty BACKEND_ENDPOINT means DEFAULT_ENDPOINT.
- DEBUG_DISABLE_ANALYTICS True disables tracking, False enables it, missing or None: tracking
  is disabled exactly when the app runs with DEBUG on.
- Without a project id or token tracking is disabled (with a warning), never an exception.
Optional tuning keys: QUEUE_SIZE, BATCH_SIZE, FLUSH_INTERVAL, TIMEOUT, MAX_RETRIES,
BACKOFF_MAX, MAX_BATCH_AGE, SHUTDOWN_TIMEOUT (a value that is not a number is ignored with a
warning).
"""

import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

logger = logging.getLogger("monitor_request_tracker")

DEFAULT_ENDPOINT = "http://127.0.0.1:8000/"
BATCH_PATH = "api/tracking/ingest/"


@dataclass(frozen=True)
class TrackerConfig:
    project_id: str
    project_token: str
    ingest_url: str
    enabled: bool
    queue_size: int = 10_000
    batch_size: int = 500
    flush_interval: float = 1.0
    timeout: float = 5.0
    max_retries: int = 6
    backoff_max: float = 30.0
    max_batch_age: float = 120.0
    shutdown_timeout: float = 2.0


def ingest_url(endpoint: str) -> str:
    """The batch endpoint under BACKEND_ENDPOINT. The legacy tracker's style, http://host/tracking/,
    is understood too: it names the same server."""
    base = (endpoint or "").strip() or DEFAULT_ENDPOINT
    parts = urlsplit(base if "://" in base else "http://" + base)
    path = parts.path.rstrip("/")
    if path.endswith("/tracking") or path == "tracking":
        path = path[: -len("tracking")]
    path = path.rstrip("/") + "/"
    return urlunsplit((parts.scheme, parts.netloc, path + BATCH_PATH, "", ""))


def resolve(settings, debug: bool) -> TrackerConfig:
    settings = dict(settings or {})

    def pick(key, env_name):
        value = settings.get(key)
        if value in (None, ""):
            value = os.environ.get(env_name, "")
        return str(value).strip()

    project_id = pick("PROJECT_ID", "RA_PROJECT_ID")
    token = pick("PROJECT_TOKEN", "RA_PROJECT_TOKEN")
    disable = settings.get("DEBUG_DISABLE_ANALYTICS")
    enabled = (not debug) if disable is None else not disable
    if enabled and not (project_id and token):
        logger.warning("request tracking is off: RIGID_ANALYTICS needs PROJECT_ID and "
                       "PROJECT_TOKEN (or RA_PROJECT_ID and RA_PROJECT_TOKEN)")
        enabled = False
    tuning: dict[str, Any] = {}
    for key, kind in (("QUEUE_SIZE", int), ("BATCH_SIZE", int), ("FLUSH_INTERVAL", float),
                      ("TIMEOUT", float), ("MAX_RETRIES", int), ("BACKOFF_MAX", float),
                      ("MAX_BATCH_AGE", float), ("SHUTDOWN_TIMEOUT", float)):
        if settings.get(key) is not None:
            try:
                tuning[key.lower()] = max(kind(settings[key]), kind(key == "BATCH_SIZE"))
            except (TypeError, ValueError):
                logger.warning("RIGID_ANALYTICS[%r] is not a number: ignored", key)
    return TrackerConfig(project_id, token, ingest_url(pick("BACKEND_ENDPOINT",
                                                            "RA_BACKEND_ENDPOINT")),
                         enabled, **tuning)
