"""Live groups of the test-machine pages, and the frames a change of a run sends to them.

Group names are built here and only here. Frames keep the earlier dashboard's shapes (extra keys are
added for the pages, never removed):
  ws/machine/status/      {"machine_id_status": {"id", "status", ..., "version"}}
  ws/machine/<pk>/runs/   {"run_data": {"id", "status", ..., "version"}}
  ws/machine/<pk>/last/   {"machine_data": {"id", "machine_name", "delta",
                                            "last_master_scenario": {..., "version"}}}

The last-run socket gets the whole run when it opens and when a dry run starts a new last run
("delta": false); after that each change sends only what it changed ("delta": true): the run's
roll-ups, and in `scenarios` only the changed scenarios, each with only its changed tests. A page
applies a delta by pk. Every frame carries its run's version (tm_api.bodies.version): a page
ignores news of a run, scenario or test older than what it shows.

Frames go through plumbing.publisher, coalesced per page: the machine list by machine, a
machine page by run, a last-run page by run (deltas of one run waiting together are merged, so
a page that gets fewer frames than there were changes still ends on the last state).
"""

from plumbing import publisher
from tm_api import bodies
from tm_api.deltas import merge_run_frames

STATUS = "status"
RUNS = "runs"
LAST = "last"


def live_group(kind: str, machine_id: int | None = None) -> str:
    if kind == STATUS:
        return "tm.machines.status"
    if kind in (RUNS, LAST) and machine_id is not None:
        return f"tm.machine.{int(machine_id)}.{kind}"
    raise ValueError(f"no live group {kind!r} for machine {machine_id!r}")


def publish_run(machine, master, scenarios: list, whole: bool = False) -> None:
    """After commit, tell the pages showing `master`'s run of its change. `scenarios` are
    bodies.scenario_row()s: every scenario with every test when `whole`, else the changed ones
    with their changed tests. `machine.last_run_id` must be current."""
    publisher.publish(live_group(RUNS, machine.pk), {"run_data": bodies.run_summary(master)},
                      key=master.run_id, merge=_newest("run_data"))
    if master.run_id != machine.last_run_id:
        return
    publisher.publish(live_group(STATUS),
                      {"machine_id_status": bodies.machine_status(machine, master)},
                      key=machine.pk, merge=_newest("machine_id_status"))
    publisher.publish(
        live_group(LAST, machine.pk),
        {"machine_data": {"id": machine.pk, "machine_name": machine.machine_name,
                          "delta": not whole,
                          "last_master_scenario": bodies.run_tree(master, scenarios)}},
        key=master.run_id, merge=merge_run_frames,
    )


def _newest(name):
    def newest(waiting, newer):
        return waiting if waiting[name]["version"] > newer[name]["version"] else newer

    return newest
