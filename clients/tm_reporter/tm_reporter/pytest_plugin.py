"""pytest plugin: `pytest --tm-url URL --tm-machine NAME [--tm-token T]` shows the run live on
Monitor's test-machine pages.

Inactive unless --tm-url is given. The collected tests are sent as one dry run (scenario = test
module, test = the rest of its node id), then a start and a stop per test, from a background
thread so the session never waits for the network. Outcomes: passed -> passed, failed in the
test -> failed, failed in setup/teardown -> error, skipped -> warning, xfail -> passed,
strict xpass -> failed.

With pytest-xdist only the controller reports (workers never do), and since tests then run in
parallel, each test's start and stop are sent together when it finishes (a start while another
test runs would mark that one unknown on the server).
"""

from __future__ import annotations

import os
import socket

import pytest

from tm_reporter.client import BackgroundReporter, Reporter, tree, utc_now


def pytest_addoption(parser):
    group = parser.getgroup("tm", "report to Monitor's test-machine dashboards")
    group.addoption("--tm-url", default=os.environ.get("TM_URL"),
                    help="Monitor's address, e.g. http://127.0.0.1:8000 (default: $TM_URL); "
                         "the plugin is off without it")
    group.addoption("--tm-machine", default=os.environ.get("TM_MACHINE"),
                    help="machine name shown on the dashboards (default: $TM_MACHINE, "
                         "else the host name)")
    group.addoption("--tm-token", default=os.environ.get("TM_TOKEN"),
                    help="machine token (default: $TM_TOKEN)")
    group.addoption("--tm-timeout", type=float, default=10.0, help="seconds per request")
    group.addoption("--tm-retries", type=int, default=3,
                    help="retries per request, with exponential backoff")


def pytest_configure(config):
    url = config.getoption("tm_url", None)
    if not url or hasattr(config, "workerinput"):  # off, or an xdist worker
        return
    machine = config.getoption("tm_machine") or socket.gethostname()
    reporter = Reporter(url, machine, config.getoption("tm_token"),
                        timeout=config.getoption("tm_timeout"),
                        retries=config.getoption("tm_retries"))
    config.pluginmanager.register(
        MachineReport(config, BackgroundReporter(reporter)), "tm_reporter_session"
    )


def split_node_id(nodeid: str) -> tuple[str, str]:
    """'pkg/test_x.py::TestA::test_b[1]' -> ('pkg/test_x.py', 'TestA::test_b[1]')."""
    module, _, rest = nodeid.partition("::")
    return module, rest or module


class MachineReport:
    def __init__(self, config, sender: BackgroundReporter):
        self.config = config
        self.sender = sender
        self.parallel = bool(getattr(config.option, "dist", "no") not in (None, "no")
                             and getattr(config.option, "numprocesses", None))
        self.dry_run_sent = False
        self.started: dict[str, str] = {}
        self.outcomes: dict[str, str] = {}

    # --- the dry run ---------------------------------------------------------------------------
    def _send_dry_run(self, nodeids, scripts=None):
        if self.dry_run_sent:
            return
        self.dry_run_sent = True
        scenarios: dict[str, list] = {}
        for nodeid in nodeids:
            module, name = split_node_id(nodeid)
            scenarios.setdefault(module, []).append(
                tree(module, name, (scripts or {}).get(nodeid, ""))
            )
        root = str(self.config.rootpath)
        master = tree(os.path.dirname(root), os.path.basename(root),
                      "pytest " + " ".join(self.config.invocation_params.args), [
                          tree(os.path.dirname(module) or ".", os.path.basename(module), "",
                               tests, "tests")
                          for module, tests in scenarios.items()
                      ], "scenarios")
        self.sender.dry_run(master)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session):
        if not self.parallel:
            self._send_dry_run([item.nodeid for item in session.items],
                               {item.nodeid: _source(item) for item in session.items})

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        self._send_dry_run(ids)

    # --- start and stop ------------------------------------------------------------------------
    def pytest_runtest_logstart(self, nodeid, location):
        self.started[nodeid] = utc_now()
        if not self.parallel:
            self.sender.start(*split_node_id(nodeid), self.started[nodeid])

    def pytest_runtest_logreport(self, report):
        status = _status_of(report)
        if status is not None and report.nodeid not in self.outcomes:
            self.outcomes[report.nodeid] = status
        if report.when == "teardown":
            status = self.outcomes.pop(report.nodeid, None) or "passed"
            if status == "passed" and report.failed:
                status = "error"
            path, name = split_node_id(report.nodeid)
            if self.parallel:
                self.sender.start(path, name, self.started.get(report.nodeid))
            self.sender.stop(path, name, status)
            self.started.pop(report.nodeid, None)

    def pytest_sessionfinish(self, session):
        if not self.sender.close():
            _warn(session, "tm-reporter: not every report was sent before the timeout")
        for error in self.sender.errors[:3]:
            _warn(session, f"tm-reporter: {error}")


def _status_of(report) -> str | None:
    """The status a phase decides, or None when it leaves the question to later phases."""
    if hasattr(report, "wasxfail"):
        return "passed" if report.skipped else "failed"  # xfail as expected / strict xpass
    if report.when == "call":
        if report.passed:
            return "passed"
        return "failed" if report.failed else "warning"
    if report.failed:
        return "error"
    if report.skipped:
        return "warning"
    return None


def _source(item) -> str:
    import inspect

    function = getattr(item, "function", None)
    if function is None:
        return ""
    try:
        return inspect.getsource(function)[:20000]
    except (OSError, TypeError):
        return ""


def _warn(session, message):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, yellow=True)
