"""Live groups of the test-machine pages, and the frames sent to them.

Group names are built here and only here. Frames keep the seed's shapes (extra keys are added
for the pages, never removed):
  ws/machine/status/      {"machine_id_status": {"id", "status", ...}}
  ws/machine/<pk>/runs/   {"run_data": {"id", "status", ...}}
  ws/machine/<pk>/last/   {"machine_data": <machine_last_data body>}
"""

import asyncio
import logging
import threading

from asgiref.sync import async_to_sync
from django.db import transaction

from trace_project.live import asend_frame

logger = logging.getLogger(__name__)

STATUS = "status"
RUNS = "runs"
LAST = "last"


def live_group(kind: str, machine_id: int | None = None) -> str:
    if kind == STATUS:
        return "tm.machines.status"
    if kind in (RUNS, LAST) and machine_id is not None:
        return f"tm.machine.{int(machine_id)}.{kind}"
    raise ValueError(f"no live group {kind!r} for machine {machine_id!r}")


async def _send_all(frames):
    await asyncio.gather(*(asend_frame(group, frame) for group, frame in frames))


# The server's event loop, set on the write threads (tm_api.views) that run reports for it: their
# frames are handed to the loop without waiting for Redis, so the reply is not held up by the
# delivery and the thread goes on with the next report. Elsewhere (tests, commands, the silence
# job) there is no such loop and frames are sent before publish_after_commit's caller goes on.
_thread = threading.local()


def send_frames_on(loop) -> None:
    _thread.loop = loop


# Per group, the task sending that group's latest frame: the next frame of the group waits for
# it, so sockets see one group's frames in the order their changes were committed.
_last_send = {}


def _schedule(frames) -> None:
    """On the event loop: send each frame after the previous frame of its group."""
    loop = asyncio.get_running_loop()
    for group, frame in frames:
        task = loop.create_task(_send_after(_last_send.get(group), group, frame))
        _last_send[group] = task
        task.add_done_callback(lambda done, group=group: _forget(group, done))


async def _send_after(previous, group, frame):
    if previous is not None:
        await asyncio.wait([previous])
    await asend_frame(group, frame)  # never raises


def _forget(group, task):
    if _last_send.get(group) is task:
        del _last_send[group]


def publish_after_commit(build_frames) -> None:
    """Once the transaction commits, call `build_frames()` -> [(group, frame)] and send them all
    in one hop to the event loop. Building after commit keeps the run's lock short; the frames
    show committed data only. Never raises into the write that caused them."""

    def send():
        try:
            frames = build_frames()
        except Exception:  # noqa: BLE001 - the write is stored; only the live view misses it
            logger.warning("live frames not built", exc_info=True)
            return
        if not frames:
            return
        loop = getattr(_thread, "loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(_schedule, frames)
        else:
            async_to_sync(_send_all)(frames)

    transaction.on_commit(send)
