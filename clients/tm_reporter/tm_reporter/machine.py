"""A virtual testing machine, like the ones the test-machine API was made for: a dry pass lists
every script, then a wet pass runs each test between a start and a stop report.

A suite is a directory: each subdirectory is a scenario, each `*.py` file in it a test (both in
name order); an optional `<scenario>.py` beside a scenario directory is that scenario's script,
and `__master__.py` in the suite is the master scenario's script.

A test passes when it runs to the end, fails on AssertionError, and is an `error` when it raises
anything else (the run goes on). It may set a module-level `STATUS` ("warning", ...) instead.

    tm-machine --url http://127.0.0.1:8000 --machine "rack 1" [--token T] path/to/suite
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tm_reporter.client import STOP_STATUSES, Reporter, ReportError, tree

logger = logging.getLogger("tm_reporter.machine")


@dataclass
class ScriptFile:
    """What a dry run tells of a test, a scenario or a suite (its master scenario)."""

    file_path: str
    file_name: str
    script: str = ""


@dataclass
class TestCase(ScriptFile):
    run: Callable[[], str | None] | None = None  # returns a status or None (passed)


@dataclass
class ScenarioPlan(ScriptFile):
    tests: list[TestCase] = field(default_factory=list)


@dataclass
class SuitePlan(ScriptFile):
    scenarios: list[ScenarioPlan] = field(default_factory=list)

    def dry_run_tree(self) -> dict:
        return tree(self.file_path, self.file_name, self.script, [
            tree(s.file_path, s.file_name, s.script, [
                tree(t.file_path, t.file_name, t.script) for t in s.tests
            ], "tests") for s in self.scenarios
        ], "scenarios")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _file_runner(path: Path):
    def run():
        namespace = runpy.run_path(str(path), run_name="__tm_test__")
        return namespace.get("STATUS")
    return run


def plan_from_directory(suite: str | os.PathLike) -> SuitePlan:
    root = Path(suite).resolve()
    if not root.is_dir():
        raise SystemExit(f"{root} is not a directory")
    plan = SuitePlan(str(root.parent), root.name, _read(root / "__master__.py"))
    for scenario_dir in sorted(p for p in root.iterdir() if p.is_dir()
                               and not p.name.startswith((".", "__"))):
        scenario = ScenarioPlan(str(root), scenario_dir.name,
                                _read(root / f"{scenario_dir.name}.py"))
        for test in sorted(scenario_dir.glob("*.py")):
            scenario.tests.append(TestCase(str(scenario_dir), test.name, _read(test),
                                           _file_runner(test)))
        plan.scenarios.append(scenario)
    return plan


def outcome(run: Callable[[], str | None] | None) -> str:
    """Run one test: its status (never raises: a crash is the test's `error`, not ours)."""
    if run is None:
        return "passed"
    try:
        status = run()
    except AssertionError:
        return "failed"
    except Exception:  # any other exception is the test's error
        logger.exception("test raised")
        return "error"
    if status is None:
        return "passed"
    return status if status in STOP_STATUSES else "unknown"


class VirtualMachine:
    def __init__(self, reporter: Reporter, plan: SuitePlan, pause: float = 0.0):
        self.reporter = reporter
        self.plan = plan
        self.pause = pause

    def _report(self, call, *args):
        try:
            call(*args)
        except ReportError as error:  # the tests go on; the dashboard misses one update
            logger.warning("report not accepted: %s", error)

    def run(self) -> dict[str, int]:
        self.reporter.dry_run(self.plan.dry_run_tree())  # without a dry run nothing can match
        counts: dict[str, int] = {}
        for scenario in self.plan.scenarios:
            for test in scenario.tests:
                self._report(self.reporter.start, test.file_path, test.file_name)
                status = outcome(test.run)
                self._report(self.reporter.stop, test.file_path, test.file_name, status)
                counts[status] = counts.get(status, 0) + 1
                if self.pause:
                    time.sleep(self.pause)
        return counts


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tm-machine", description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", help="suite directory (scenario folders of test files)")
    parser.add_argument("--url", required=True, help="Monitor's address, e.g. http://host:8000")
    parser.add_argument("--machine", default=os.uname().nodename, help="machine name")
    parser.add_argument("--token", default=os.environ.get("TM_TOKEN"),
                        help="machine token (default: $TM_TOKEN)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--retries", type=int, default=4, help="retries per request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    reporter = Reporter(args.url, args.machine, args.token, args.timeout, args.retries)
    try:
        counts = VirtualMachine(reporter, plan_from_directory(args.suite)).run()
    except ReportError as error:
        print(f"tm-machine: {error}", file=sys.stderr)
        return 2
    print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no tests")
    return 1 if set(counts) & {"failed", "error"} else 0


if __name__ == "__main__":
    sys.exit(main())
