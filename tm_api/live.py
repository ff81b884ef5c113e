"""Live groups of the test-machine pages, and the frames sent to them.

Group names are built here and only here. Frames keep the seed's shapes (extra keys are added
for the pages, never removed):
  ws/machine/status/      {"machine_id_status": {"id", "status", ...}}
  ws/machine/<pk>/runs/   {"run_data": {"id", "status", ...}}
  ws/machine/<pk>/last/   {"machine_data": <machine_last_data body>}
"""

import asyncio

from asgiref.sync import async_to_sync
from django.db import transaction

from trace_project.live import asend_frame

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


def publish_after_commit(build_frames) -> None:
    """Once the transaction commits, call `build_frames()` -> [(group, frame)] and send them all
    in one hop to the event loop. Building after commit keeps the run's lock short; the frames
    show committed data only. Never raises into the write that caused them."""

    def send():
        import logging

        try:
            frames = build_frames()
        except Exception:  # noqa: BLE001 - the write is stored; only the live view misses it
            logging.getLogger(__name__).warning("live frames not built", exc_info=True)
            return
        if frames:
            async_to_sync(_send_all)(frames)

    transaction.on_commit(send)
