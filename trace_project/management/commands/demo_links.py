"""manage.py demo_links (`make demo-links`): a real app, its real tests and what links them.

Runs the shop of examples/linked_demo/ (Flask, instrumented with OpenTelemetry and Monitor's
request tracker) and its pytest suite (reported through the tm_reporter plugin, one test failing
because of a bug of the shop) against the server at --url, then prints the pages to follow: the
run, the failing test's trace, its request and the slowest request on the dashboard.

This module imports only what the server imports: the shop and its suite run in subprocesses of
this Python (the dev virtualenv: Flask, the OpenTelemetry SDK and the clients are dev tools).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max
from django.urls import reverse

from plumbing import trace_links
from plumbing.demo import check_server
from plumbing.tokens import derived_token, token_digest, token_hint
from tm_api.auth import TOKEN_PREFIX as MACHINE_TOKEN_PREFIX
from tm_api.models import Machine, MachineToken, Run, TestResult, machine_key
from traces.models import Span
from tracking.models import TOKEN_PREFIX as PROJECT_TOKEN_PREFIX
from tracking.models import Project, RequestMetric

EXAMPLE = Path(settings.BASE_DIR) / "examples" / "linked_demo"
PROJECT_NAME = "Linked demo shop"
MACHINE_NAME = "linked-demo"
APP_SERVICE = "linked-demo-shop"
TESTS_SERVICE = "linked-demo-tests"
# What the shop and its suite import: the dev requirements (`make demo-links` installs them).
NEEDED = ("flask", "opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http",
          "opentelemetry.instrumentation.wsgi", "opentelemetry.instrumentation.requests",
          "monitor_request_tracker", "tm_reporter", "pytest")
# Variables of the caller's environment that would change what the subprocesses do.
DROPPED = ("DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "TRACEPARENT",
           "TM_TRACEPARENT", "TM_URL", "TM_TOKEN", "TM_MACHINE", "TM_SPOOL", "TM_SPOOL_DIR")
RUN_LINE = re.compile(r"tm-reporter: run \S*/machines/runs/(\d+)/")


def demo_project() -> tuple[Project, str]:
    """The demo's project and its token, derived from SECRET_KEY: the same on every run."""
    token = derived_token(PROJECT_TOKEN_PREFIX, "demo_links project")
    project = Project.objects.filter(token_digest=token_digest(token)).first()
    if project is None:
        project = Project.objects.create(name=PROJECT_NAME, token_digest=token_digest(token),
                                         token_hint=token_hint(token))
    return project, token


def demo_machine_token() -> str:
    """A machine token good for the demo's machine only, derived from SECRET_KEY likewise (the
    server may refuse anonymous machines: DEBUG off)."""
    secret = derived_token(MACHINE_TOKEN_PREFIX, "demo_links machine")
    if not MachineToken.objects.filter(digest=token_digest(secret)).exists():
        machine = (Machine.objects.filter(name_key=machine_key(MACHINE_NAME)).first()
                   or Machine.objects.create(machine_name=MACHINE_NAME))
        MachineToken.objects.create(name="linked demo (manage.py demo_links)", machine=machine,
                                    digest=token_digest(secret), hint=token_hint(secret))
    return secret


class Command(BaseCommand):
    help = ("Run a small Flask shop instrumented with OpenTelemetry and the request tracker, and "
            "its pytest suite reported through the tm_reporter plugin (one test fails), against "
            "the server at --url; then print the run page, the failing test's trace and the "
            "slowest request. Needs the dev tools: `make demo-links` installs them and runs it.")

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000",
                            help="the running server; it must use this database "
                                 "(default %(default)s)")
        parser.add_argument("--wait", type=float, default=30.0,
                            help="seconds to wait for the spans and requests to be stored "
                                 "after the tests (default %(default)s)")

    def handle(self, *args, url, wait, **options):
        url = url.rstrip("/")
        missing = [name for name in NEEDED if not _importable(name)]
        if missing:
            raise CommandError(
                f"the demo's app and tests need the dev tools ({', '.join(missing)} not found "
                f"for {sys.executable}); run `make demo-links`, which installs "
                "requirements-dev.txt as `make test` does")
        if not (EXAMPLE / "shop.py").exists():
            raise CommandError(f"{EXAMPLE} is missing: run this from a checkout of the project")
        check_server(url)

        project, project_token = demo_project()
        machine_token = demo_machine_token()
        before = Run.objects.filter(machine__name_key=machine_key(MACHINE_NAME)).aggregate(
            last=Max("pk"))["last"] or 0
        self.stdout.write(self.style.MIGRATE_HEADING(
            f"Project {project.name!r} ({project.public_id}), machine {MACHINE_NAME!r}"))

        env = {name: value for name, value in os.environ.items() if name not in DROPPED}
        env.update({
            # OpenTelemetry's own variables: the SDK sends to <endpoint>/v1/traces.
            "OTEL_EXPORTER_OTLP_ENDPOINT": url,
            "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization={quote('Bearer ' + project_token)}",
            # The request tracker's: the same project.
            "RA_PROJECT_ID": str(project.public_id), "RA_PROJECT_TOKEN": project_token,
            "RA_BACKEND_ENDPOINT": url + "/",
            "PYTHONUNBUFFERED": "1",
        })
        with tempfile.TemporaryDirectory(prefix="demo-links-") as scratch:
            app, shop_url, app_log = self._start_app(env, Path(scratch))
            try:
                run_id = self._run_tests(
                    {**env, "OTEL_SERVICE_NAME": TESTS_SERVICE, "SHOP_URL": shop_url,
                     "TM_SPOOL_DIR": scratch}, url, machine_token)
            finally:
                self._stop_app(app, app_log)
        run = (Run.objects.filter(pk=run_id).first() if run_id else
               Run.objects.filter(machine__name_key=machine_key(MACHINE_NAME), pk__gt=before)
               .order_by("-pk").first())
        if run is None:
            check_server(url)  # it stopped while the tests ran: say so
            raise CommandError(f"the tests ran but no run of {MACHINE_NAME!r} reached the "
                               f"server at {url}: does it use this database?")
        self._print_links(url, project, run, wait)

    # --- the shop -------------------------------------------------------------------------------

    def _start_app(self, env, scratch: Path):
        log_path = scratch / "shop.log"
        log = open(log_path, "w+b")
        app = subprocess.Popen(
            [sys.executable, str(EXAMPLE / "shop.py"), "--port", "0"],
            env={**env, "OTEL_SERVICE_NAME": APP_SERVICE}, cwd=EXAMPLE,
            stdout=subprocess.PIPE, stderr=log, text=True)
        first_line: list[str] = []
        reader = threading.Thread(target=lambda: first_line.append(app.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(20)
        match = re.match(r"listening on (\S+)", first_line[0] if first_line else "")
        if match is None:
            app.kill()
            app.wait()
            raise CommandError("the demo shop did not start: " + _tail(log))
        shop_url = match.group(1).rstrip("/")
        self.stdout.write(f"Shop (Flask, OpenTelemetry + request tracker): {shop_url}/")
        return app, shop_url, log

    def _stop_app(self, app, log) -> None:
        """SIGTERM: the shop flushes its spans and tracked requests, then exits."""
        app.terminate()
        try:
            app.wait(timeout=15)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
            self.stderr.write("the demo shop did not stop within 15 s; killed it "
                              "(some of its spans or requests may be missing)")
        if app.returncode not in (0, -15):
            self.stderr.write(f"the demo shop exited with status {app.returncode}: {_tail(log)}")
        app.stdout.close()
        log.close()

    # --- its tests ------------------------------------------------------------------------------

    def _run_tests(self, env, url: str, machine_token: str) -> int | None:
        command = [sys.executable, "-m", "pytest", "-v", "--tm-url", url,
                   "--tm-machine", MACHINE_NAME, "--tm-token", machine_token]
        self.stdout.write(self.style.MIGRATE_HEADING(
            "Running the shop's tests: pytest -v --tm-url " + url + f" --tm-machine {MACHINE_NAME}"
            " --tm-token ..."))
        tests = subprocess.Popen(command, env=env, cwd=EXAMPLE, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        run_id = None
        for line in tests.stdout:
            self.stdout.write("  " + line.rstrip("\n"))
            found = RUN_LINE.search(line)
            if found:
                run_id = int(found.group(1))
        tests.wait()
        # 1: some tests failed, as the demo means them to. Anything else went wrong.
        if tests.returncode not in (0, 1):
            raise CommandError(f"pytest ended with status {tests.returncode} (see above)")
        return run_id

    # --- what to click --------------------------------------------------------------------------

    def _print_links(self, url: str, project: Project, run: Run, wait: float) -> None:
        failed = list(TestResult.objects.filter(
            test__master_scenario__run=run, outcome="failed").select_related("test"))
        deadline = time.monotonic() + wait
        while True:
            # Spans and tracked requests arrive after the tests (exporters flush at exit).
            trace_ids = [result.trace_id for result in failed if result.trace_id]
            error_spans = set(Span.objects.filter(
                trace__trace_id__in=trace_ids, status_code=Span.ERROR, service=APP_SERVICE)
                .values_list("trace__trace_id", flat=True))
            tracked = set(RequestMetric.objects.filter(
                project=project, trace_id__in=trace_ids).values_list("trace_id", flat=True))
            searched = RequestMetric.objects.filter(project=project, path="/search").exists()
            complete = (bool(trace_ids) and error_spans >= set(trace_ids)
                        and tracked >= set(trace_ids) and searched)
            if complete or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        # The slow search, of this run or an earlier one: the project's slowest request.
        slowest = RequestMetric.objects.filter(project=project).order_by("-duration_ms").first()
        found = trace_links.find(trace_ids, kinds=("trace", "requests"))
        dashboard = url + reverse("tracking:project", args=[project.public_id])
        write = self.stdout.write
        write("")
        write(self.style.MIGRATE_HEADING("Follow a failing test to its trace and its requests:"))
        write(f"  Run:              {url}{run.get_absolute_url()}")
        for result in failed:
            write(f"  Failing test:     {result.test.file_name}: {result.message.splitlines()[0]}"
                  if result.message else f"  Failing test:     {result.test.file_name}")
            for link in found.get(result.trace_id or "", []):
                label = "Its trace:" if link.kind == "trace" else "Its request:"
                write(f"  {label:<17} {url}{link.url}   ({link.label})")
        if slowest is not None:
            write(f"  Slowest request:  {dashboard}?sort=-duration   "
                  f"({slowest.method} {slowest.path} · {slowest.duration_ms:.0f} ms)")
            for link in trace_links.find([slowest.trace_id], kinds=("trace",)).get(
                    slowest.trace_id or "", []):
                write(f"  Its trace:        {url}{link.url}")
        write(f"  Dashboard:        {dashboard}")
        write("(Log in first when the server asks: manage.py createsuperuser makes an account.)")
        if not complete:
            self.stderr.write(
                f"Within {wait:g} s not everything arrived (traces of the failing tests with "
                f"the shop's error span: {len(error_spans)}/{len(trace_ids)}, their tracked "
                f"requests: {len(tracked)}/{len(trace_ids)}, the slow search: "
                f"{'yes' if searched else 'no'}); the pages fill in as it does.")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _tail(log, lines: int = 15) -> str:
    log.flush()
    log.seek(0)
    text = log.read().decode("utf-8", "replace").strip().splitlines()[-lines:]
    return "\n".join(text) or "(no output)"
