"""Deltas of a run's tree: how the publisher merges two waiting frames of one run, and how a
page applies frames to what it shows. No Django import: bench/tm_live.py uses it as a client.

A `machine_data` frame carries a whole run ("delta": false) or a delta ("delta": true): the
run's roll-ups and only the changed scenarios, each with only its changed tests. Every frame
carries the run's version (tm_api.bodies.version).
"""


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
