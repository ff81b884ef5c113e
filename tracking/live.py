"""Live frames of the metrics dashboard: one group per project, a few frames a second at most.

Ingest can commit hundreds of batches a second; the page only needs to know "new requests
arrived" a few times a second, after which it reads the summary API. Frames go through
plumbing.publisher at most once per TRACKING_LIVE_MIN_INTERVAL per project and server
process; arrivals meanwhile are added up into the frame that waits, so the last one always goes
out and none is lost.
"""

from django.conf import settings

from plumbing import publisher


def project_group(project_id: int) -> str:
    """The channel-layer group of one project's live page (the only place this name is built)."""
    return f"tracking.project.{project_id}"


def add_arrivals(waiting: dict, newer: dict) -> dict:
    """One frame for two: requests accepted added up, the newest arrival kept."""
    return {**newer, "accepted": waiting["accepted"] + newer["accepted"],
            "newest": max(waiting["newest"], newer["newest"])}


def publish_requests_after_commit(project, accepted: int, newest: float) -> None:
    """Tell the project's page, once this transaction commits, that `accepted` requests (the
    newest at `newest`, a Unix time) were stored."""
    publisher.publish(
        project_group(project.pk),
        {"type": "requests", "project": str(project.public_id), "accepted": accepted,
         "newest": newest},
        merge=add_arrivals, interval=settings.TRACKING_LIVE_MIN_INTERVAL,
    )
