"""The background sender: reports queue in memory, one thread sends them in batches.

The host (a test session) only appends to a deque: it never waits for the network, the disk or
a lock. Every `interval` seconds, or as soon as `max_batch` reports wait, the thread forms a
batch (a new Idempotency-Key), writes it to the spool's journal and posts it to
/tm_api/batch/, so the live pages follow the run while it runs. A batch that fails (no
connection, a timeout, 429, 5xx) is tried again with backoff while the session runs; at the end
(`finish`) the thread keeps sending while the server answers, up to a cap, with no retry, and
what is left is kept in the spool for the next session. A server without the batch endpoint
(404/405) gets each report on its own endpoint instead, with keys derived from the batch's.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
import uuid

from tm_reporter.client import Reporter, ReportError
from tm_reporter.spool import request_body
from tm_reporter.tracecontext import suppress_instrumentation

logger = logging.getLogger("tm_reporter")

BATCH_PATH = "/tm_api/batch/"
SINGLE_PATHS = {"dry_run": "/tm_api/dry_run/", "test_start": "/tm_api/test_start/",
                "test_stop": "/tm_api/test_stop/"}
TRANSIENT = {408, 425, 429, 500, 502, 503, 504}
MAX_BACKOFF = 10.0
_INDEX = re.compile(r"^reports\[(\d+)\]")


def _why(error) -> str:
    """A short reason from requests' nest of wrapped exceptions."""
    text = str(error)
    if "Read timed out" in text:
        return "the server did not answer in time"
    if "timed out" in text:
        return "server unreachable (no connection in time)"
    if "Connection refused" in text or "Errno 111" in text:
        return "server unreachable (connection refused)"
    if "Name or service not known" in text or "getaddrinfo" in text:
        return "server unreachable (unknown host)"
    return f"server unreachable ({type(error).__name__})"


class Stop(Exception):
    """Sending is over for this session (no connection at the end, or the server refuses the
    token): keep the rest."""


class Retry(Exception):
    def __init__(self, reason, wait=None):
        super().__init__(reason)
        self.wait = wait


class BatchSender:
    def __init__(self, reporter: Reporter, spool=None, interval=0.5, max_batch=250,
                 retries=3, connect_timeout=0.5, journal_delay=1.0):
        self.reporter = reporter
        self.spool = spool
        self.interval = interval
        self.max_batch = max_batch
        self.retries = retries
        self.connect_timeout = connect_timeout
        self.journal_delay = journal_delay
        self._held_since: float | None = None  # since when reports wait unformed behind others
        self.results_sent = 0  # test stops the server applied
        self.earlier_sent = 0  # of them, from batches an earlier session left
        self.refused: list[str] = []  # the server's reasons, a few
        self.refused_count = 0
        self.problem = ""  # why sending stopped, if it did
        # The run of the first dry run the server answered, and an event set once it is known
        # or a request failed (whoever waits for it need not wait longer).
        self.run_id: int | None = None
        self.run_known = threading.Event()
        self._reports: collections.deque = collections.deque()
        self._pending: collections.deque = collections.deque()  # formed batches, unsent
        self._earlier_keys: set = set()
        self._bodies: dict[str, str] = {}  # key -> request body of the batches not answered
        self._lock = threading.Lock()  # guards _pending between the thread and finish()
        self._wake = threading.Event()
        self._finishing = False
        self._deadline: float | None = None
        self._per_report = False
        self._thread: threading.Thread | None = None
        if spool is not None:
            try:
                earlier = spool.take_over()
            except OSError as error:
                logger.warning("tm-reporter: spool %s unusable: %s", spool.path, error)
                self.spool = None
                earlier = []
            self._pending.extend(earlier)
            self._earlier_keys = {batch["key"] for batch in earlier}

    def start(self) -> BatchSender:
        self._thread = thread = threading.Thread(target=self._run, name="tm-reporter", daemon=True)
        thread.start()
        return self

    # --- the host's side: never blocks ------------------------------------------------------

    def put(self, report: dict) -> None:
        self._reports.append(report)
        if len(self._reports) >= self.max_batch:
            self._wake.set()

    def send_soon(self) -> None:
        """Send what waits now rather than at the next interval (the dry run)."""
        self._wake.set()

    def finish(self, cap: float) -> None:
        """Send what is left while the server answers, for at most `cap` seconds (plus one
        connect timeout when a request is under way), then keep the rest on disk."""
        thread = self._thread or self.start()._thread
        assert thread is not None
        began = time.monotonic()
        self._deadline = began + cap
        self._finishing = True
        self._wake.set()
        thread.join(cap + self.connect_timeout + 0.5)
        with self._lock:
            self._form_batches(everything=True)
            left = list(self._pending)
            self._pending.clear()
        if self.spool is not None:
            try:
                self.spool.keep(left, self._bodies)
            except OSError as error:
                self.problem = self.problem or f"spool {self.spool.path} not written: {error}"
                logger.warning("tm-reporter: %s", self.problem)
                self.lost = self._stops(left)
                self.kept = 0
                self.finish_seconds = time.monotonic() - began
                return
        self.kept = self._stops(left)
        self.lost = 0 if self.spool is not None else self.kept
        self.finish_seconds = time.monotonic() - began
        self.reporter.close()

    # --- the thread ---------------------------------------------------------------------------

    def _run(self):
        suppress_instrumentation()  # the reports' own HTTP calls are no part of any test
        failures = 0
        while True:
            if not self._finishing:
                self._wake.wait(self.interval)
                self._wake.clear()
            try:
                while True:
                    with self._lock:
                        self._form_before_request()
                        if not self._pending:
                            break
                        batch = self._pending[0]
                    try:
                        self._send(batch)
                    except (ValueError, KeyError, TypeError, AttributeError) as error:
                        # A 200 that is no answer of ours (a proxy's page): maybe applied, so
                        # the same batch again later, with its key.
                        raise Retry(f"unexpected answer from the server ({error})") from None
                    failures = 0
                    if not self._more_now():
                        break
            except Stop as stop:
                self.problem = str(stop)
                self.run_known.set()
                return
            except Retry as retry:
                failures += 1
                self.problem = str(retry)
                self.run_known.set()
                if self._finishing:
                    return  # no retry loop at the end: the spool keeps it
                logger.debug("tm-reporter: %s", retry)
                if failures > self.retries:
                    wait = MAX_BACKOFF
                else:
                    wait = min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1))
                self._wake.wait(max(wait, retry.wait or 0))
                continue
            if self._finishing:
                with self._lock:
                    if not self._reports:
                        return

    def _more_now(self) -> bool:
        """After an answer, send again at once only what cannot wait: a backlog of formed
        batches, a full batch, or anything at the end of the session. What came during the
        request waits for the interval (or a full batch): sending it at once made a batch of
        the few reports of each round trip, so the faster the server answered the more requests
        the session paid for (about 30 reports a batch, 2,000 tests against a fast server)."""
        with self._lock:
            return (self._finishing or bool(self._pending)
                    or len(self._reports) >= self.max_batch)

    def _form_before_request(self):
        """What came meanwhile goes to the journal as batches: all of it when nothing else waits
        to be sent; behind a backlog only full batches, and the rest once it has waited
        `journal_delay`. A backlog then goes out in full batches, not in one small batch per
        request (a round trip each, which made the backlog grow while a fast suite ran); what a
        killed session had not yet put in its journal is lost, as before, for that much
        longer."""
        now = time.monotonic()
        if not self._pending or (self._held_since is not None
                                 and now - self._held_since >= self.journal_delay):
            self._form_batches(everything=True)
        else:
            self._form_batches()
        if not self._reports:
            self._held_since = None
        elif self._held_since is None:
            self._held_since = now

    def _form_batches(self, everything=False):
        while self._reports and (everything or len(self._reports) >= self.max_batch):
            reports: list[dict] = []
            while self._reports and len(reports) < self.max_batch:
                reports.append(self._reports.popleft())
            self._add_batch(reports)

    def _add_batch(self, reports, front=False):
        batch = {"key": uuid.uuid4().hex, "at": time.time(),
                 "machine_name": self.reporter.machine_name, "reports": reports}
        body = self._bodies[batch["key"]] = request_body(batch)  # encoded once, sent as is
        if self.spool is not None:
            try:
                self.spool.formed(batch, body)
            except OSError as error:
                logger.debug("tm-reporter: journal not written: %s", error)
        if front:
            self._pending.appendleft(batch)
        else:
            self._pending.append(batch)
        return batch

    def _timeout(self):
        read = self.reporter.timeout
        if self._finishing and self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise Stop("the time to send at the end of the session ran out")
            read = min(read, left)
        return (min(self.connect_timeout, read), read)

    def _done(self, batch, results=None):
        earlier = batch["key"] in self._earlier_keys
        for report, result in zip(batch["reports"], results or [None] * len(batch["reports"])):
            status = result.get("status", 202) if result else 202
            if status >= 400:
                self._refuse(report, result.get("detail", str(status)))
            elif report.get("type") == "test_stop":
                self.results_sent += 1
                self.earlier_sent += earlier
            elif report.get("type") == "dry_run" and not earlier and not self.run_known.is_set():
                self.run_id = (result or {}).get("run")  # none from a server without batches
                self.run_known.set()
        with self._lock:
            self._drop(batch)
        if self.spool is not None:
            try:
                self.spool.answered(batch["key"])
            except OSError:
                pass

    def _drop(self, batch):
        """`batch` is answered: out of the queue (unless finish() already took it to the spool,
        where its key makes the next session's resend a replay)."""
        if self._pending and self._pending[0] is batch:
            self._pending.popleft()
        self._bodies.pop(batch["key"], None)

    def _refuse(self, report, reason):
        self.refused_count += 1
        if len(self.refused) < 3:
            self.refused.append(f"{report.get('type')} {report.get('file_name', '')}: {reason}")

    def _send(self, batch):
        if self._per_report:
            return self._send_each(batch)
        try:
            body = self._bodies.get(batch["key"])
            if body is None:  # a batch an earlier session left
                body = self._bodies[batch["key"]] = request_body(batch)
            response = self.reporter.session.post(
                self.reporter.url + BATCH_PATH, timeout=self._timeout(),
                data=body.encode("utf-8"), headers={"Idempotency-Key": batch["key"],
                                                    "Content-Type": "application/json"})
        except Exception as error:  # noqa: BLE001 - requests' and urllib3's errors alike
            raise self._unreachable(error) from None
        code = response.status_code
        if code == 200:
            return self._done(batch, response.json().get("results"))
        if code in (404, 405):
            self._per_report = True  # a server older than the batch endpoint
            return self._send_each(batch)
        self._answer_error(batch, code, response)

    def _unreachable(self, error):
        deadline = self._deadline
        if self._finishing and deadline is not None and time.monotonic() >= deadline - 0.01:
            reason = "the time to send at the end (--tm-finish-seconds) ran out"
        else:
            reason = _why(error)
        return Stop(reason) if self._finishing else Retry(reason)

    def _answer_error(self, batch, code, response):
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:200]}
        detail = body.get("detail", "") if isinstance(body, dict) else ""
        if code in TRANSIENT:
            wait = response.headers.get("Retry-After")
            raise Retry(f"server answered {code}",
                        float(wait) if wait and wait.isdigit() else None)
        if code in (401, 403):
            raise Stop(f"server refused the token: {code} {detail}")
        if code == 413 and len(batch["reports"]) > 1:
            return self._split(batch)
        if code == 400 and len(batch["reports"]) > 1:
            bad = {int(m.group(1)) for name in (body.get("errors") or {})
                   if (m := _INDEX.match(name))}
            if bad:
                with self._lock:
                    self._drop(batch)
                    for index in sorted(bad):
                        self._refuse(batch["reports"][index], detail)
                    rest = [r for i, r in enumerate(batch["reports"]) if i not in bad]
                    if rest:
                        self._add_batch(rest, front=True)
                return None
        # The batch as a whole was refused: sending it again would be refused again.
        for report in batch["reports"]:
            self._refuse(report, f"{code} {detail}")
        with self._lock:
            self._drop(batch)
        return None

    def _split(self, batch):
        half = len(batch["reports"]) // 2
        with self._lock:
            self._drop(batch)
            self._add_batch(batch["reports"][half:], front=True)
            self._add_batch(batch["reports"][:half], front=True)

    def _send_each(self, batch):
        """The per-report endpoints; a report's key is the batch's and its index, so a resent
        batch applies each report once."""
        results = []
        for index, report in enumerate(batch["reports"]):
            body = {k: v for k, v in report.items() if k != "type"}
            body.setdefault("machine_name", batch["machine_name"])
            try:
                response = self.reporter.session.post(
                    self.reporter.url + SINGLE_PATHS[report["type"]], json=body,
                    timeout=self._timeout(), headers={"Idempotency-Key": f"{batch['key']}.{index}"})
            except (ReportError, KeyError):
                results.append({"status": 400, "detail": "unknown report type"})
                continue
            except Exception as error:  # noqa: BLE001 - requests' and urllib3's errors alike
                raise self._unreachable(error) from None
            code = response.status_code
            if code < 400:
                results.append({"status": code})
                continue
            if code in TRANSIENT or code in (401, 403):
                self._answer_error(batch, code, response)  # raises
            try:
                detail = response.json().get("detail", "")
            except ValueError:
                detail = response.text[:200]
            results.append({"status": code, "detail": detail})
        self._done(batch, results)

    @staticmethod
    def _stops(batches) -> int:
        return sum(1 for batch in batches for report in batch["reports"]
                   if report.get("type") == "test_stop")

    def summary(self, spool_path=None) -> str:
        line = f"tm-reporter: {self.results_sent:,} results sent"
        if self.earlier_sent:
            line += f" ({self.earlier_sent:,} of them from an earlier session)"
        if self.finish_seconds >= 0.5:
            line += f", the last ones in {self.finish_seconds:.1f} s after the tests"
        if self.refused_count:
            line += f", {self.refused_count:,} reports refused by the server ({self.refused[0]})"
        if self.kept:
            line += f", {self.kept:,} kept in {spool_path}, sent next session"
        if self.lost:
            line += f", {self.lost:,} lost"
        if (self.kept or self.lost) and self.problem:
            line += f" ({self.problem})"
        return line
