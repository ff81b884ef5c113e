"""Delivering frames to live pages now, not coalesced.

Changes are published through plumbing.publisher (after commit, coalesced, at a bounded rate);
this module keeps the direct sends (send_frame/asend_frame: one frame now, for messages between
consumers such as a trace's decision). The channel layer they travel on with Redis is
plumbing.library_internals.channels_redis_pubsub. Each app builds its own group names (one
function per app).
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from plumbing import publisher
from plumbing.publisher import FRAME_EVENT  # the event LiveConsumer handles

logger = logging.getLogger(__name__)


def publish_after_commit(group: str, frame: dict, using: str | None = None) -> None:
    """Publish `frame` to `group` once the current transaction commits (plumbing.publisher,
    coalesced per group: the page gets the last frame)."""
    publisher.publish(group, frame, using=using)


def send_frame(group: str, frame: dict) -> None:
    """Send `frame` now, not coalesced. A failing channel layer (Redis down) is logged, never
    raised."""
    try:
        async_to_sync(get_channel_layer().group_send)(group, {"type": FRAME_EVENT, "data": frame})
    except Exception:  # a live view must never break a write (logged)
        logger.warning("live frame to %s not sent", group, exc_info=True)


async def asend_frame(group: str, frame: dict) -> None:
    try:
        await get_channel_layer().group_send(group, {"type": FRAME_EVENT, "data": frame})
    except Exception:  # logged: a live view must never break a write
        logger.warning("live frame to %s not sent", group, exc_info=True)
