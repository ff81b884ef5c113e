"""Live sockets of the test-machine pages (frames: tm_api.live)."""

from channels.db import database_sync_to_async

from plumbing.consumers import LiveConsumer
from tm_api import bodies
from tm_api.live import LAST, RUNS, STATUS, live_group
from tm_api.models import Machine


class MachinesStatusConsumer(LiveConsumer):
    """ws/machine/status/: every machine's status, for the machine list (which reloads its rows
    when the socket opens)."""

    def live_groups(self):
        return [live_group(STATUS)]


class MachineRunsConsumer(LiveConsumer):
    """ws/machine/<pk>/runs/: the status of each run of one machine (the page reloads its rows
    when the socket opens)."""

    def live_groups(self):
        return [live_group(RUNS, self.scope["url_route"]["kwargs"]["pk"])]


@database_sync_to_async
def _last_run(machine_id):
    machine = Machine.objects.filter(pk=machine_id).first()
    return None if machine is None else bodies.machine_last_data(machine)


class MachineLastRunConsumer(LiveConsumer):
    """ws/machine/<pk>/last/: the machine's last run, whole when the socket opens (so a page
    that reconnects shows the current state), then each change as a delta (tm_api.live)."""

    def live_groups(self):
        return [live_group(LAST, self.scope["url_route"]["kwargs"]["pk"])]

    async def on_joined(self):
        # Read after joining the group: a change committed meanwhile is in the snapshot or in
        # a frame after it (an older frame arriving later is ignored by its version).
        body = await _last_run(self.scope["url_route"]["kwargs"]["pk"])
        if body is not None:
            await self.send_json({"machine_data": {**body, "delta": False}})
