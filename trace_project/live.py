"""Pushing changes to live pages, always after the database has them.

Each app builds its own group names (one function per app); this module only delivers. A frame
is the JSON object the browser receives, unchanged.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

FRAME_EVENT = "live.frame"


def publish_after_commit(group: str, frame: dict, using: str | None = None) -> None:
    """Send `frame` to every socket in `group` once the current transaction commits.

    Outside a transaction it is sent at once. A failing channel layer (Redis down) is logged,
    never raised: the data is stored, only the live view misses a frame.
    """
    transaction.on_commit(lambda: send_frame(group, frame), using=using)


def send_frame(group: str, frame: dict) -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(group, {"type": FRAME_EVENT, "data": frame})
    except Exception:  # noqa: BLE001 - a live view must never break a write
        logger.warning("live frame to %s not sent", group, exc_info=True)


async def asend_frame(group: str, frame: dict) -> None:
    try:
        await get_channel_layer().group_send(group, {"type": FRAME_EVENT, "data": frame})
    except Exception:  # noqa: BLE001
        logger.warning("live frame to %s not sent", group, exc_info=True)
