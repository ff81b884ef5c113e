"""Live frames of the metrics dashboard: one group per project, at most a few frames a second.

Ingest can commit hundreds of batches a second; the page only needs to know "new requests
arrived" a few times a second, after which it reads the summary API. So each server process sends
at most one frame per project per TRACKING_LIVE_MIN_INTERVAL; arrivals inside the interval are
added up and sent by a timer when it ends (a trailing frame), so the last arrival is never lost.
"""

import threading
import time

from django.conf import settings
from django.db import transaction

from trace_project.live import send_frame


def project_group(project_id: int) -> str:
    """The channel-layer group of one project's live page (the only place this name is built)."""
    return f"tracking.project.{project_id}"


class LiveGate:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._last_sent: dict[int, float] = {}
        self._pending: dict[int, dict] = {}  # project id -> frame waiting for its timer

    def publish(self, project_id: int, public_id: str, accepted: int, newest: float) -> None:
        """Note `accepted` new requests of a project; send now or at the end of the interval."""
        interval = settings.TRACKING_LIVE_MIN_INTERVAL
        with self._lock:
            pending = self._pending.get(project_id)
            if pending is not None:
                pending["accepted"] += accepted
                pending["newest"] = max(pending["newest"], newest)
                return
            frame = {"type": "requests", "project": public_id, "accepted": accepted,
                     "newest": newest}
            wait = self._last_sent.get(project_id, -1e9) + interval - self._clock()
            if wait <= 0:
                self._last_sent[project_id] = self._clock()
            else:
                self._pending[project_id] = frame
                timer = threading.Timer(wait, self._send_pending, args=(project_id,))
                timer.daemon = True
                timer.start()
                return
        send_frame(project_group(project_id), frame)

    def _send_pending(self, project_id: int) -> None:
        with self._lock:
            frame = self._pending.pop(project_id, None)
            self._last_sent[project_id] = self._clock()
        if frame is not None:
            send_frame(project_group(project_id), frame)


gate = LiveGate()


def publish_requests_after_commit(project, accepted: int, newest: float) -> None:
    transaction.on_commit(
        lambda: gate.publish(project.pk, str(project.public_id), accepted, newest)
    )
