"""Batches a session could not send, kept on disk for the next session.

One spool per server and machine (the default path is derived from both, under
$TM_SPOOL_DIR, else $XDG_CACHE_HOME/tm-reporter, else ~/.cache/tm-reporter). Files:

    <spool>             batches left by sessions that ended, one JSON object a line
    <spool>.<id>.session  the journal of a running session: the batches it took over and every
                        batch it formed, each written before it is first sent, and a line per
                        batch the server answered. Locked (flock) by its session while it runs.
    <spool>.lock        taken for the moments a session reads or writes the above

A session takes over the spool and the journals of sessions that died (a journal nobody holds
locked) when it starts, sends those batches before its own, and at its end appends what it
could not send to the spool. A batch keeps its Idempotency-Key on disk, so a batch the server
stored but whose answer was lost is answered again, not applied twice. A session killed with
SIGKILL leaves its journal: the next session sends what it holds (all but the reports not yet
formed into a batch: those of the last half second, or of the request under way). Two sessions
at once never take the same batch.
Without fcntl (Windows) there is no locking and a dead session's journal is not taken over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import uuid
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # tested for before each use

logger = logging.getLogger("tm_reporter")


def default_path(url: str, machine_name: str) -> Path:
    base = os.environ.get("TM_SPOOL_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tm-reporter"
    where = urlsplit(url).netloc or url
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{machine_name}@{where}")[:80]
    digest = hashlib.sha256(f"{url.rstrip('/')}\0{machine_name}".encode()).hexdigest()[:10]
    return Path(base) / f"{readable}-{digest}.jsonl"


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a+b") as handle:
        if fcntl:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _read_lines(path: Path) -> list[dict]:
    records: list[dict] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return records
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # the torn last line of a killed writer
    return records


def encoded(value) -> str:
    """JSON text, compact, of a batch's request body or of a spool line."""
    return json.dumps(value, separators=(",", ":"))


def request_body(batch: dict) -> str:
    """What POST /tm_api/batch/ is sent for `batch`."""
    return encoded({"machine_name": batch["machine_name"], "reports": batch["reports"]})


def batch_line(batch: dict, body: str) -> str:
    """The batch's line in a journal or the spool, made from its request body (`body`, as
    request_body made it) without encoding the reports again: a pytest session's dry run is a
    megabyte or more of JSON, and its answer is what the session waits for."""
    return f'{{"key":{encoded(batch["key"])},"at":{encoded(batch["at"])},{body[1:]}'


def _unsent(records) -> list[dict]:
    """Batches of a spool or journal whose answer never came, in order."""
    done = {r["sent"] for r in records if "sent" in r}
    return [r for r in records if "reports" in r and r.get("key") not in done]


class Spool:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self.lock_path = Path(f"{self.path}.lock")
        self.journal_path: Path | None = None
        self._journal: TextIO | None = None

    def take_over(self) -> list[dict]:
        """Open this session's journal and move into it every batch left by earlier sessions
        (the spool's and those of dead sessions' journals); returns them, oldest first."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.journal_path = Path(f"{self.path}.{uuid.uuid4().hex[:12]}.session")
        with _locked(self.lock_path):
            self._journal = opened = open(self.journal_path, "a", encoding="utf-8")
            if fcntl:
                fcntl.flock(opened, fcntl.LOCK_EX)
            batches = _unsent(_read_lines(self.path))
            orphans = []
            for journal in sorted(self.path.parent.glob(f"{self.path.name}.*.session")):
                if journal == self.journal_path or not fcntl:
                    continue
                with open(journal, "a", encoding="utf-8") as other:
                    try:
                        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        continue  # its session is running
                    batches += _unsent(_read_lines(journal))
                    orphans.append(journal)
            batches.sort(key=lambda batch: batch.get("at", 0))  # stable: file order kept
            for batch in batches:
                self._write(batch)
            opened.flush()
            # Only now that the journal holds them may their old copies go.
            for orphan in orphans:
                orphan.unlink(missing_ok=True)
            if self.path.exists():
                self.path.write_text("", encoding="utf-8")
        return batches

    def _write(self, record: dict, line: str | None = None) -> None:
        assert self._journal is not None  # take_over() opened it
        self._journal.write((line or encoded(record)) + "\n")

    def formed(self, batch: dict, body: str | None = None) -> None:
        """Before a batch is first sent: if this process dies, the next session sends it.
        `body`: the batch's request body as the sender encoded it (batch_line)."""
        if self._journal is not None:
            self._write(batch, batch_line(batch, body) if body else None)
            self._journal.flush()

    def answered(self, key: str) -> None:
        if self._journal is not None:
            self._write({"sent": key})
            self._journal.flush()

    def keep(self, batches: list[dict], bodies: dict | None = None) -> None:
        """At the end of the session: what was not sent goes to the spool, the journal goes.
        `bodies`: key -> request body of the batches the sender encoded (batch_line)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        bodies = bodies or {}
        with _locked(self.lock_path):
            if batches:
                with open(self.path, "a", encoding="utf-8") as spool:
                    for batch in batches:
                        body = bodies.get(batch.get("key"))
                        spool.write((batch_line(batch, body) if body else encoded(batch))
                                    + "\n")
                    spool.flush()
            if self._journal is not None and self.journal_path is not None:  # both or neither
                self._journal.close()
                self._journal = None
                self.journal_path.unlink(missing_ok=True)
