"""HTTP client for /tm_api/: the three reports a machine makes."""
from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from datetime import datetime, timezone

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

logger = logging.getLogger("tm_reporter")

STOP_STATUSES = ("cancelled", "unknown", "failed", "error", "warning", "passed")


class ReportError(Exception):
    """The server refused a report (4xx) or could not be reached after the retries."""

    def __init__(self, message, status_code=None, body=None):
        super().__init__(message)
        self.status_code = status_code
        self.body = body


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat()


def tree(file_path, file_name, script="", children=None, children_key=None) -> dict:
    node = {"file_path": file_path, "file_name": file_name, "script": script or ""}
    if children_key:
        node[children_key] = list(children or [])
    return node


class Reporter:
    """Posts dry runs, starts and stops. Connection errors and 429/502/503/504 answers are retried
    with exponential backoff (urllib3's Retry: backoff_factor * 2**(n-1) seconds); every request
    has a timeout. A 4xx answer raises ReportError with the server's reason at once. Each report
    carries an Idempotency-Key, so a retry never applies a report twice."""

    def __init__(self, url, machine_name, token=None, timeout=10.0, retries=4,
                 backoff_factor=0.5, session=None):
        self.url = url.rstrip("/")
        self.machine_name = machine_name
        self.timeout = timeout
        self.retries, self.backoff_factor = retries, backoff_factor
        self.session = session or requests.Session()
        retry = Retry(
            total=retries, connect=retries, read=retries, status=retries,
            backoff_factor=backoff_factor, status_forcelist=(429, 502, 503, 504),
            allowed_methods=frozenset({"POST"}), raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.headers["User-Agent"] = "tm-reporter/1.1"
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def _post(self, path, body):
        # One key per report, the same on every retry urllib3 makes: a report the server stored
        # but whose answer was lost (a restart, a timeout) is answered again, not applied twice.
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        for attempt in range(self.retries + 1):
            try:
                response = self.session.post(self.url + path, json=body, timeout=self.timeout,
                                             headers=headers)
                break
            except requests.exceptions.ChunkedEncodingError as error:
                # The answer broke off after its headers (the server died while sending it):
                # urllib3's Retry is over by then, so the report is sent again here, with its
                # key (stored already, it is answered again, not applied twice).
                if attempt == self.retries:
                    raise ReportError(f"POST {path} failed: {error}") from error
                time.sleep(self.backoff_factor * 2 ** attempt)
            except requests.RequestException as error:
                raise ReportError(f"POST {path} failed: {error}") from error
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text[:200]
            raise ReportError(f"POST {path}: {response.status_code} {detail}",
                              response.status_code, response.text)
        return response.json()

    def dry_run(self, master_scenario: dict, timestamp: str | None = None) -> dict:
        """`master_scenario` = tree(path, name, script, [tree(..., [tests], "tests")...],
        "scenarios")."""
        return self._post("/tm_api/dry_run/", {
            "machine_name": self.machine_name, "timestamp": timestamp or utc_now(),
            "master_scenario": master_scenario,
        })

    def start(self, file_path, file_name, timestamp: str | None = None) -> dict:
        return self._post("/tm_api/test_start/", {
            "machine_name": self.machine_name, "file_path": file_path, "file_name": file_name,
            "timestamp_start": timestamp or utc_now(),
        })

    def stop(self, file_path, file_name, status, timestamp: str | None = None) -> dict:
        if status not in STOP_STATUSES:
            raise ValueError(f"status must be one of {', '.join(STOP_STATUSES)}")
        return self._post("/tm_api/test_stop/", {
            "machine_name": self.machine_name, "file_path": file_path, "file_name": file_name,
            "status": status, "timestamp_stop": timestamp or utc_now(),
        })

    def close(self):
        self.session.close()


class BackgroundReporter:
    """Queues reports to one thread that sends them in order: the host (a test session) never
    waits for the network. After a report fails for good, the rest are still tried; `close()`
    waits up to `flush_timeout` seconds for the queue to drain."""

    def __init__(self, reporter: Reporter, flush_timeout=30.0):
        self.reporter = reporter
        self.flush_timeout = flush_timeout
        self.errors: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="tm-reporter", daemon=True)
        self._thread.start()

    def _work(self):
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                method, args = item
                try:
                    getattr(self.reporter, method)(*args)
                except ReportError as error:
                    if len(self.errors) < 20:
                        self.errors.append(str(error))
                    logger.warning("tm-reporter: %s", error)
            finally:
                self._queue.task_done()

    def dry_run(self, master_scenario, timestamp=None):
        self._queue.put(("dry_run", (master_scenario, timestamp or utc_now())))

    def start(self, file_path, file_name, timestamp=None):
        self._queue.put(("start", (file_path, file_name, timestamp or utc_now())))

    def stop(self, file_path, file_name, status, timestamp=None):
        self._queue.put(("stop", (file_path, file_name, status, timestamp or utc_now())))

    def close(self) -> bool:
        """True when everything queued was sent (or failed) within the flush timeout."""
        self._queue.put(None)
        self._thread.join(self.flush_timeout)
        self.reporter.close()
        return not self._thread.is_alive()
