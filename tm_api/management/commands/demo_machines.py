"""Virtual machines that run scenarios, so a fresh install has live machine pages."""

import http.client
import json
import random
import time
import urllib.error
import urllib.request

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from plumbing.demo import check_server, server_gone
from tm_api import services
from tm_api.models import Machine

MACHINES = ["rack-01 lamp", "rack-02 door", "rack-03 trunk"]
SCENARIOS = {
    "scenario_01_feature_lamp.py": ["01_01_test_lamp_on.py", "01_02_test_lamp_dim.py",
                                    "01_03_test_lamp_off.py", "01_04_test_lamp_blink.py"],
    "scenario_02_feature_door.py": ["02_01_test_door_open.py", "02_02_test_door_lock.py",
                                    "02_03_test_door_close.py"],
    "scenario_03_feature_trunk.py": ["03_01_test_trunk.py", "03_01_test_trunk.py",
                                     "03_02_test_trunk_sensor.py"],
}
OUTCOMES = ["passed"] * 14 + ["warning"] * 2 + ["failed", "error"]


def script_of(name):
    return (f"# {name}\nfrom time import sleep\n\n\ndef run(rig):\n    rig.reset()\n"
            f"    sleep(0.5)\n    assert rig.check({name!r})\n")


def master_tree():
    return {
        "file_path": "/virtual_testing_machine/src/test_cases/scenarios",
        "file_name": "scenario_master.py",
        "script": "import os\nfrom run import SCENARIOS_DIR, run_test_scenario\n",
        "scenarios": [
            {"file_path": "/virtual_testing_machine/src/test_cases/scenarios", "file_name": name,
             "script": f"from run import run_test_case\n# runs {len(tests)} tests\n",
             "tests": [{"file_path": f"/virtual_testing_machine/src/test_cases/{name[:-3]}",
                        "file_name": test, "script": script_of(test)} for test in tests]}
            for name, tests in SCENARIOS.items()
        ],
    }


class InProcess:
    """Reports through the service functions (pages update live if they share the channel
    layer: with REDIS_URL)."""

    name = "service functions in this process"

    def dry_run(self, machine, tree):
        services.record_dry_run(machine, timezone.now(), tree)

    def start(self, machine, path, name):
        services.start_test(machine, path, name)

    def stop(self, machine, path, name, status):
        services.stop_test(machine, path, name, status)


class OverHttp:
    """Reports to a running server over its HTTP API, as a real machine does (stdlib only)."""

    def __init__(self, url, token=None):
        self.url = url.rstrip("/")
        self.token = token
        self.name = f"the HTTP API at {self.url}"

    def _post(self, path, body):
        request = urllib.request.Request(self.url + path, json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        if self.token:
            request.add_header("Authorization", f"Token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            raise CommandError(self._refusal(path, error)) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            raise server_gone(self.url, error) from None

    def _refusal(self, path, error):
        try:
            detail = json.loads(error.read())["detail"]
        except (ValueError, KeyError, TypeError, OSError):
            detail = error.reason
        said = f"the server at {self.url} answered {error.code} to {path}: {detail}"
        if error.code in (401, 403):
            return (f"{said}; pass a machine token with --token "
                    "(manage.py machine_token create NAME)")
        return said

    def dry_run(self, machine, tree):
        self._post("/tm_api/dry_run/", {"machine_name": machine,
                                        "timestamp": timezone.now().isoformat(),
                                        "master_scenario": tree})

    def start(self, machine, path, name):
        self._post("/tm_api/test_start/", {"machine_name": machine, "file_path": path,
                                           "file_name": name})

    def stop(self, machine, path, name, status):
        self._post("/tm_api/test_stop/", {"machine_name": machine, "file_path": path,
                                          "file_name": name, "status": status})


class Command(BaseCommand):
    help = (
        "Start virtual test machines that run scenarios (dry run, then start/stop per test) so "
        "the machine pages show live progress. Reports over HTTP to the server at --url, as real "
        "machines do (--in-process: through the service functions, no server needed). Runs until "
        "Ctrl-C; --once runs one pass and exits. The machines are reused by name on each run; "
        "--reset deletes them, with their runs, first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one run per machine, then exit")
        parser.add_argument("--url", default="http://127.0.0.1:8000",
                            help="server to report to over HTTP (default %(default)s)")
        parser.add_argument("--token", help="machine token, when the server needs one")
        parser.add_argument("--in-process", action="store_true",
                            help="report through the service functions of this process instead "
                                 "of a server (live pages of a server only hear of it with "
                                 "REDIS_URL)")
        parser.add_argument("--reset", action="store_true",
                            help="delete the demo machines, their runs and tests first")
        parser.add_argument("--machines", type=int, default=len(MACHINES),
                            help=f"how many machines (at most {len(MACHINES)})")
        parser.add_argument("--pace", type=float, default=0.6,
                            help="seconds a test takes (default %(default)s)")

    def handle(self, *args, once=False, url=None, token=None, in_process=False, machines=3,
               pace=0.6, reset=False, **options):
        if not in_process:
            check_server(url)  # before anything is deleted or reported
        sink = InProcess() if in_process else OverHttp(url, token)
        if reset:
            deleted = Machine.objects.filter(machine_name__in=MACHINES).delete()[1]
            self.stdout.write(f"reset: deleted {deleted.get('tm_api.Machine', 0)} demo machines "
                              f"and {deleted.get('tm_api.Run', 0)} runs")
        names = MACHINES[:max(1, min(machines, len(MACHINES)))]
        self.stdout.write(f"{len(names)} virtual machines reporting through {sink.name}"
                          + ("" if once else " (Ctrl-C to stop)"))
        rng = random.Random()
        try:
            while True:
                self.one_pass(sink, names, rng, 0 if once else pace)
                if once:
                    break
                time.sleep(pace * 3)
        except KeyboardInterrupt:
            self.stdout.write("stopped")

    def one_pass(self, sink, names, rng, pace):
        """The machines interleave: each step advances every machine by one test."""
        plans = {}
        for machine in names:
            tree = master_tree()
            sink.dry_run(machine, tree)
            plans[machine] = [(t["file_path"], t["file_name"]) for s in tree["scenarios"]
                              for t in s["tests"]]
        steps = max(len(p) for p in plans.values())
        for step in range(steps):
            for machine in names:
                if step < len(plans[machine]):
                    sink.start(machine, *plans[machine][step])
            if pace:
                time.sleep(pace * rng.uniform(0.5, 1.5))
            for machine in names:
                if step < len(plans[machine]):
                    outcome = rng.choice(OUTCOMES)
                    sink.stop(machine, *plans[machine][step], outcome)
        self.stdout.write(f"pass done: {', '.join(names)}")
