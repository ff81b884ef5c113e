"""Live sockets of the test-machine pages (frames are built by services, see tm_api.live)."""

from trace_project.consumers import LiveConsumer
from tm_api.live import LAST, RUNS, STATUS, live_group


class MachinesStatusConsumer(LiveConsumer):
    """ws/machine/status/: every machine's status, for the machine list."""

    def live_groups(self):
        return [live_group(STATUS)]


class MachineRunsConsumer(LiveConsumer):
    """ws/machine/<pk>/runs/: the status of each run of one machine."""

    def live_groups(self):
        return [live_group(RUNS, self.scope["url_route"]["kwargs"]["pk"])]


class MachineLastRunConsumer(LiveConsumer):
    """ws/machine/<pk>/last/: the whole last run of one machine, after every change."""

    def live_groups(self):
        return [live_group(LAST, self.scope["url_route"]["kwargs"]["pk"])]
