"""pytest plugin: `pytest --tm-url URL --tm-machine NAME [--tm-token T]` shows the run live on
Monitor's test-machine pages.

Inactive unless --tm-url is given. The collected tests are sent as one dry run (scenario = test
module, test = the rest of its node id), with the commit, branch and build URL of the CI it runs
in (tm_reporter.ci), then a start and a stop per test. Statuses, as the test-machine API knows
them: passed -> passed, failed in the test -> failed, failed in setup/teardown -> error, skipped
-> warning, xfail -> passed, xpass -> failed. Each stop also carries pytest's own outcome
(passed, failed, error, skipped, xfailed, xpassed), the outcome of each attempt when
pytest-rerunfailures ran it again (one test, several attempts), and for a test that did not
pass its message, its traceback (pytest's text of it) and, for a failure or an error, the
captured stdout, stderr and log, each bounded (MAX_DETAIL characters, the cut marked). The
run's address is printed when the dry run is answered and again at the end.

Reports go to a background sender (tm_reporter.sender) that posts them in batches every half
second: a test never waits for the network. At the end of the session the sender goes on while
the server answers, for at most --tm-finish-seconds, and what it could not send is kept in a
spool file (tm_reporter.spool) that the next session sends first. One line says what happened.

With pytest-xdist only the controller reports (workers never do), and since tests then run in
parallel, each test's start and stop are sent together when it finishes (a start while another
test runs would mark that one unknown on the server).

Each test runs in a W3C trace context of its own (tm_reporter.tracecontext; off with
--tm-no-trace): TRACEPARENT and TM_TRACEPARENT in the environment, and with opentelemetry-api an
OpenTelemetry span around the test. Its trace id travels in the test's reports (user property
`trace_id`, so xdist workers hand it to the controller) and goes with the test's stop.
"""

from __future__ import annotations

import ast
import functools
import gc
import linecache
import os
import socket

import pytest

from tm_reporter.ci import ci_metadata
from tm_reporter.client import Reporter, tree, utc_now
from tm_reporter.sender import BatchSender
from tm_reporter.spool import Spool, default_path
from tm_reporter.tracecontext import TestTrace

# The server's limits on names (longer ones would make the whole batch a 400).
MAX_FILE_NAME, MAX_FILE_PATH = 256, 1024
# Each text a stop carries (message, traceback, stdout, stderr, log), as the server keeps it.
MAX_DETAIL = 64 * 1024
# How long the session waits, before its first test, for the server to answer the dry run with
# the run's id (to print its address); never longer than the server takes to refuse or fail.
RUN_ADDRESS_WAIT = 2.0


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
    group.addoption("--tm-timeout", type=float, default=10.0,
                    help="seconds to wait for an answer (default 10)")
    group.addoption("--tm-connect-timeout", type=float, default=0.5,
                    help="seconds to wait for a connection (default 0.5): what a server that "
                         "is down can add to the session's end")
    group.addoption("--tm-retries", type=int, default=3,
                    help="while the session runs, a batch that failed is tried again after "
                         "0.5, 1, 2... s this many times, then every 10 s (default 3)")
    group.addoption("--tm-finish-seconds", type=float,
                    default=float(os.environ.get("TM_FINISH_SECONDS") or 60),
                    help="at the end of the session, keep sending while the server answers "
                         "for at most this long (default: $TM_FINISH_SECONDS, else 60); the "
                         "rest is kept in the spool")
    group.addoption("--tm-spool", default=os.environ.get("TM_SPOOL"),
                    help="file keeping what could not be sent, sent first by the next session "
                         "(default: $TM_SPOOL, else one file per server and machine under "
                         "$TM_SPOOL_DIR or ~/.cache/tm-reporter)")
    group.addoption("--tm-no-trace", action="store_true", default=False,
                    help="do not run each test in a trace context of its own (TRACEPARENT, "
                         "TM_TRACEPARENT and, with opentelemetry-api, a span per test)")
    # Where the run's code came from: --tm-commit, --tm-branch, --tm-build-url.
    for option, what in (("commit", "the commit tested"), ("branch", "the branch tested"),
                         ("build-url", "the CI build's address")):
        variable = "TM_" + option.upper().replace("-", "_")
        group.addoption(f"--tm-{option}", default=os.environ.get(variable),
                        help=f"{what} (default: ${variable}, else the CI's own variables, "
                             "as tm_reporter.ci reads them)")


def pytest_configure(config):
    url = config.getoption("tm_url", None)
    if url and not config.getoption("tm_no_trace"):
        # Wherever tests run: this process, or each xdist worker.
        config.pluginmanager.register(TestTraces(), "tm_reporter_traces")
    if not url or hasattr(config, "workerinput"):  # off, or an xdist worker
        return
    machine = config.getoption("tm_machine") or socket.gethostname()
    # No retries inside a request: the sender retries a batch itself, and never at the end.
    reporter = Reporter(url, machine, config.getoption("tm_token"),
                        timeout=config.getoption("tm_timeout"), retries=0)
    spool = Spool(config.getoption("tm_spool") or default_path(url, machine))
    sender = BatchSender(reporter, spool, retries=config.getoption("tm_retries"),
                         connect_timeout=config.getoption("tm_connect_timeout")).start()
    config.pluginmanager.register(MachineReport(config, sender), "tm_reporter_session")


@pytest.fixture
def tm_traceparent() -> str | None:
    """The running test's `traceparent` header value (None when the plugin is off), for HTTP
    clients that OpenTelemetry does not instrument:
    requests.get(url, headers={"traceparent": tm_traceparent})."""
    return os.environ.get("TM_TRACEPARENT")


class TestTraces:
    """Runs each test in a trace context of its own (tm_reporter.tracecontext)."""

    __test__ = False

    def __init__(self):
        self.current: TestTrace | None = None

    @pytest.hookimpl(hookwrapper=True)  # the old style: pytest 7 too
    def pytest_runtest_protocol(self, item, nextitem):
        test = self.current = TestTrace(item.nodeid).start()
        # In every report of the test (xdist sends them to the controller with it).
        item.user_properties.append(("trace_id", test.trace_id))
        try:
            yield
        finally:
            self.current = None
            test.end()

    def pytest_runtest_logreport(self, report):
        if report.failed and self.current is not None:
            crash = getattr(report.longrepr, "reprcrash", None)
            self.current.failed(getattr(crash, "message", "") or f"{report.when} failed")


def trace_id_of(report) -> str | None:
    for name, value in getattr(report, "user_properties", ()):
        if name == "trace_id":
            return value
    return None


def split_node_id(nodeid: str) -> tuple[str, str]:
    """'pkg/test_x.py::TestA::test_b[1]' -> ('pkg/test_x.py', 'TestA::test_b[1]')."""
    module, _, rest = nodeid.partition("::")
    return module[:MAX_FILE_PATH], (rest or module)[:MAX_FILE_NAME]


class MachineReport:
    def __init__(self, config, sender: BatchSender):
        self.config = config
        self.sender = sender
        self.parallel = bool(getattr(config.option, "dist", "no") not in (None, "no")
                             and getattr(config.option, "numprocesses", None))
        self.dry_run_sent = False
        self.started: dict[str, str] = {}
        self.outcomes: dict[str, str] = {}
        self.results: dict[str, dict] = {}  # node id -> what its stop will say beyond status
        self.attempts: dict[str, list] = {}  # node id -> outcomes of its earlier attempts
        self.retried: dict[str, dict] = {}  # node id -> its last failed attempt's details
        self.url = config.getoption("tm_url").rstrip("/")
        self.machine = sender.reporter.machine_name

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
                          tree((os.path.dirname(module) or ".")[:MAX_FILE_PATH],
                               os.path.basename(module)[:MAX_FILE_NAME], "", tests, "tests")
                          for module, tests in scenarios.items()
                      ], "scenarios")
        ci = ci_metadata(commit=self.config.getoption("tm_commit"),
                         branch=self.config.getoption("tm_branch"),
                         build_url=self.config.getoption("tm_build_url"))
        self.sender.put({"type": "dry_run", "timestamp": utc_now(), "master_scenario": master,
                         **{key: value for key, value in ci.items() if value}})
        self.sender.send_soon()
        self.sender.run_known.wait(RUN_ADDRESS_WAIT)
        self._write_line(self._where())

    def _where(self) -> str:
        if self.sender.run_id is not None:
            return f"tm-reporter: run {self.url}/machines/runs/{self.sender.run_id}/"
        return f"tm-reporter: machine {self.machine!r} on {self.url}/machines/"

    def _write_line(self, line, **markup):
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(line, **markup)

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
        if nodeid in self.started:
            return  # another attempt of the same test (pytest-rerunfailures): started already
        self.started[nodeid] = utc_now()
        if not self.parallel:
            self._start(*split_node_id(nodeid), self.started[nodeid])

    def _start(self, path, name, timestamp):
        self.sender.put({"type": "test_start", "file_path": path, "file_name": name,
                         "timestamp_start": timestamp})

    def pytest_runtest_logreport(self, report):
        nodeid = report.nodeid
        if report.outcome == "rerun":
            # pytest-rerunfailures: this attempt failed and the test runs again. The attempt
            # is remembered (its details too, in case the next attempts pass); its remaining
            # phases say nothing more.
            self.attempts.setdefault(nodeid, []).append(
                "failed" if report.when == "call" else "error")
            self.retried[nodeid] = {**_details(report, "failed"), **_captured(report)}
            self.outcomes[nodeid] = "rerun"
            if report.when == "teardown":
                self.outcomes.pop(nodeid, None)
            return
        if self.outcomes.get(nodeid) == "rerun":
            if report.when == "teardown":
                self.outcomes.pop(nodeid, None)
            return
        status = _status_of(report)
        if status is not None and nodeid not in self.outcomes:
            self.outcomes[nodeid] = status
            self.results[nodeid] = _details(report, _outcome_of(report))
        if report.when == "teardown":
            status = self.outcomes.pop(nodeid, None) or "passed"
            result = self.results.pop(nodeid, None) or {"outcome": "passed"}
            if status == "passed" and report.failed:
                status = "error"
                result = _details(report, "error")
            if result["outcome"] in ("failed", "error"):
                result.update(_captured(report))
            attempts = self.attempts.pop(nodeid, [])
            if attempts:
                result["attempts"] = [*attempts, result["outcome"]]
                # Passed at last: why the earlier attempt failed is what is worth keeping.
                earlier = self.retried.pop(nodeid, {})
                if result["outcome"] not in ("failed", "error"):
                    result.update({k: v for k, v in earlier.items() if k != "outcome"})
            path, name = split_node_id(nodeid)
            if self.parallel:
                self._start(path, name, self.started.get(nodeid) or utc_now())
            result["trace_id"] = trace_id_of(report)
            self.sender.put({"type": "test_stop", "file_path": path, "file_name": name,
                             "status": status, "timestamp_stop": utc_now(),
                             **{key: value for key, value in result.items() if value}})
            self.started.pop(nodeid, None)

    def pytest_sessionfinish(self, session):
        self.sender.finish(self.config.getoption("tm_finish_seconds"))
        self.summary = self.sender.summary(self.sender.spool.path if self.sender.spool else None)

    def pytest_terminal_summary(self, terminalreporter):
        # Here, not in sessionfinish: the summary starts on a line of its own.
        sender = self.sender
        terminalreporter.write_line(
            self.summary, **({"yellow": True} if sender.kept or sender.lost
                             or sender.refused_count else {"green": True}))
        if self.dry_run_sent:
            terminalreporter.write_line(self._where())


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


def _outcome_of(report) -> str:
    """pytest's own word for what a phase decided (see _status_of for the status)."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.skipped:
        return "skipped"
    if report.failed:
        return "failed" if report.when == "call" else "error"
    return "passed"


# How a long text is cut: as the server cuts it (tm_api/outcomes.py; tm_api's test_results
# checks that the two agree), so that what arrives cut is kept as it is.
CUT_MARK = "\n[... {} characters cut ...]\n"
HEAD_SHARE = 4  # the head keeps a quarter of the room, the tail the rest


def bounded(text: str, limit: int = MAX_DETAIL) -> str:
    """At most `limit` characters: the head and the tail, the cut marked."""
    if len(text) <= limit:
        return text
    room = limit - len(CUT_MARK.format(len(text)))
    head, tail = text[:room // HEAD_SHARE], text[len(text) - room + room // HEAD_SHARE:]
    return head + CUT_MARK.format(len(text) - len(head) - len(tail)) + tail


def _details(report, outcome: str) -> dict:
    """The outcome and, unless the phase passed, its message and traceback."""
    result = {"outcome": outcome}
    if outcome == "passed":
        return result
    longrepr = report.longrepr
    message = ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (file, line, reason)
        message = str(longrepr[2])
    else:
        crash = getattr(longrepr, "reprcrash", None)
        if crash is not None:
            message = crash.message
        elif longrepr:
            lines = str(longrepr).strip().splitlines()
            message = lines[-1] if lines else ""
        if getattr(report, "wasxfail", ""):
            message = f"xfail: {report.wasxfail}" + (f"\n{message}" if message else "")
        if longrepr and outcome != "skipped":
            result["traceback"] = bounded(report.longreprtext)
    result["message"] = bounded(message)
    return result


def _captured(report) -> dict:
    """What the test printed and logged, all phases so far (a teardown report has them all)."""
    return {"stdout": bounded(report.capstdout), "stderr": bounded(report.capstderr),
            "log": bounded(report.caplog)}


def _source(item) -> str:
    function = getattr(item, "function", None)
    code = getattr(function, "__code__", None)
    if code is None:
        return ""
    end = _function_ends(code.co_filename).get(code.co_firstlineno)
    if end is None:  # not a def of that file's syntax tree (generated, exec'd): ask inspect
        import inspect

        try:
            return inspect.getsource(function)[:20000]  # type: ignore[arg-type]  # None: TypeError
        except (OSError, TypeError):
            return ""
    lines = linecache.getlines(code.co_filename)
    return "".join(lines[code.co_firstlineno - 1:end])[:20000]


@functools.cache
def _function_ends(filename: str) -> dict:
    """{first line of each function (its first decorator's): its last line}, one parse per
    file: inspect.getsource tokenizes the file again for every test (0.1 ms each).

    The cyclic garbage collector waits meanwhile: the syntax tree is thousands of objects (none
    of them garbage), each counting towards a collection, and in a session holding thousands
    of collected items a collection walks them all (3.5 ms a 100-test module with it, 0.5
    without). The tree is gone before it resumes, and its objects with it from the count."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _ends_in(ast.parse("".join(linecache.getlines(filename))))
    except (SyntaxError, ValueError):
        return {}
    finally:
        if collecting:
            gc.enable()


def _ends_in(tree) -> dict:
    # Statements only, and not into functions (pytest collects none there): ast.walk visited
    # every expression too, as long again as the parse.
    ends = {}
    statements: list = list(tree.body)
    while statements:
        node = statements.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            ends[min([node.lineno, *(d.lineno for d in node.decorator_list)])] = node.end_lineno
        else:  # a class, or an if, try, with... around definitions
            statements.extend(child for child in ast.iter_child_nodes(node)
                              if isinstance(child, (ast.stmt, ast.excepthandler)))
    return ends
