"""Live groups of the test-machine pages, and the frames a change of a run sends to them.

Group names are built here and only here. Frames keep the seed's shapes (extra keys are added
for the pages, never removed):
  ws/machine/status/      {"machine_id_status": {"id", "status", ..., "version"}}
  ws/machine/<pk>/runs/   {"run_data": {"id", "status", ..., "version"}}
  ws/machine/<pk>/last/   {"machine_data": {"id", "machine_name", "delta",
                                            "last_master_scenario": {..., "version"}}}

The last-run socket gets the whole run when it opens and when a dry run starts a new last run
("delta": false); after that each change sends only what it changed ("delta": true): the run's
roll-ups, and in `scenarios` only the changed scenarios, each with only its changed tests. A page
applies a delta by pk. Every frame carries its run's version (tm_api.bodies.version): a page
ignores news of a run, scenario or test older than what it shows.

Frames go through trace_project.publisher, coalesced per page: the machine list by machine, a
machine page by run, a last-run page by run (deltas of one run waiting together are merged, so
a page that gets fewer frames than there were changes still ends on the last state).
"""

from trace_project import publisher
from tm_api import bodies

STATUS = "status"
RUNS = "runs"
LAST = "last"


def live_group(kind: str, machine_id: int | None = None) -> str:
    if kind == STATUS:
        return "tm.machines.status"
    if kind in (RUNS, LAST) and machine_id is not None:
        return f"tm.machine.{int(machine_id)}.{kind}"
    raise ValueError(f"no live group {kind!r} for machine {machine_id!r}")


def send_frames_on(loop) -> None:
    """Frames published on this thread go to `loop`, the server's (worker threads not made by
    asgiref; see trace_project.publisher)."""
    publisher.serve_on(loop)


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


def merge_run_frames(waiting: dict, newer: dict) -> dict:
    """One `machine_data` frame holding both frames' news of one run (each entity as of the
    later version); whole if either is whole and not older. May change `waiting`."""
    first, second = waiting["machine_data"], newer["machine_data"]
    if second["last_master_scenario"]["version"] < first["last_master_scenario"]["version"]:
        first, second = second, first
    if not second.get("delta"):
        return {"machine_data": second}
    run, news = first["last_master_scenario"], second["last_master_scenario"]
    scenarios = {scenario["pk"]: scenario for scenario in run["scenarios"]}
    for scenario in news["scenarios"]:
        known = scenarios.get(scenario["pk"])
        if known is None:
            run["scenarios"].append(scenario)
            continue
        tests = known["tests"]
        where = {test["pk"]: n for n, test in enumerate(tests)}
        for test in scenario["tests"]:
            n = where.get(test["pk"])
            if n is None:
                tests.append(test)
            else:
                tests[n] = test
        known.update({name: value for name, value in scenario.items() if name != "tests"})
    run.update({name: value for name, value in news.items() if name != "scenarios"})
    return {"machine_data": first}



class LastRunPage:
    """What a last-run page shows, kept from its socket's frames by the rules its script
    (templates/tm/last_run.html) follows; for Python clients, tests and bench/tm_live.py.

    A whole run replaces what is shown. A delta of the shown run updates each run, scenario and
    test it names, unless the page holds a newer version of it. A delta of another run cannot
    be applied: apply() says so, and the page reads the run over REST (machine_last_data).
    """

    def __init__(self):
        self.body = None  # a machine_last_data body
        self.versions = {}

    def apply(self, frame: dict) -> bool:
        data = frame.get("machine_data")
        if data is None:
            return True
        run = data["last_master_scenario"]
        if not data.get("delta"):
            self.show(data)
            return True
        shown = self.body and self.body["last_master_scenario"]
        if not shown or shown["pk"] != run["pk"]:
            return False
        version = run["version"]
        if self._newer("run", run["pk"], version):
            shown.update({name: value for name, value in run.items() if name != "scenarios"})
        scenarios = {scenario["pk"]: scenario for scenario in shown["scenarios"]}
        for scenario in run["scenarios"]:
            known = scenarios.get(scenario["pk"])
            if known is None:
                return False
            if self._newer("scenario", scenario["pk"], version):
                known.update({k: v for k, v in scenario.items() if k != "tests"})
            tests = {test["pk"]: test for test in known["tests"]}
            for test in scenario["tests"]:
                if test["pk"] not in tests:
                    return False
                if self._newer("test", test["pk"], version):
                    tests[test["pk"]].update(test)
        return True

    def show(self, data: dict) -> None:
        """A whole body (a frame's or machine_last_data's)."""
        self.body = data
        self.versions = {}
        run = data["last_master_scenario"]
        if run is None:
            return
        version = run.get("version", 0)
        self.versions[("run", run["pk"])] = version
        for scenario in run["scenarios"]:
            self.versions[("scenario", scenario["pk"])] = version
            for test in scenario["tests"]:
                self.versions[("test", test["pk"])] = version

    def _newer(self, kind, pk, version) -> bool:
        if version < self.versions.get((kind, pk), -1):
            return False
        self.versions[(kind, pk)] = version
        return True

    @staticmethod
    def summary(body: dict | None):
        """What a person sees of a machine_last_data body: run, scenario and test statuses and
        counts (to compare a page with the database)."""
        run = body and body["last_master_scenario"]
        if not run:
            return None
        return {
            "run": (run["pk"], run["status"], run["tests_statistics"], run["duration"]),
            "scenarios": {s["pk"]: (s["status"], s.get("tests_statistics"))
                          for s in run["scenarios"]},
            "tests": {t["pk"]: (t["status"], t["duration"])
                      for s in run["scenarios"] for t in s["tests"]},
        }
