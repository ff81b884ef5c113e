"""Production-shaped smoke test: what a Docker deploy gets, with only requirements.txt installed.

Run by `.ci/smoke`, which builds a fresh virtualenv from requirements.txt alone and runs this
file with that virtualenv's Python, so a module that runtime code imports but requirements.txt
does not install fails here (the test suite cannot see it: it runs with the dev requirements).

It uses only the standard library and what requirements.txt installs (PyYAML comes with
drf-spectacular), and it does what a production deploy does, in this order:
  1. every module of every local app imports, with DEBUG off;
  2. docker-compose's `migrate` command, then the Dockerfile's `collectstatic` step (manifest
     storage: hashed names);
  3. a superuser, a machine token and a JSON-webhook channel pointed at a local receiver;
  4. the web server (the Dockerfile's CMD), the worker and the scheduler (docker-compose's
     commands), read from those files so that this test starts what they start;
  5. a machine with its token reports a run that ends with a failed test, and the receiver gets
     the run_failed notification with a valid HMAC signature;
  6. a logged-in person gets every page and /api/docs/, and every static file they reference;
  7. the scheduler runs its every-minute jobs without failing, and no process logged an error.

Environment: DATABASE_URL (an empty PostgreSQL database) and REDIS_URL are required.
"""

import hashlib
import hmac
import http.cookiejar
import http.server
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
LOCAL_APPS = ["trace_project", "plumbing", "traces", "tm_api", "tracking", "notifications",
              "idempotency"]
MACHINE = "smoke machine"
WEBHOOK_KEY = secrets.token_hex(16)
started = time.monotonic()


def say(message):
    print(f"[smoke {time.monotonic() - started:5.1f}s] {message}", flush=True)


class SmokeFailure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise SmokeFailure(message)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- what docker-compose and the Dockerfile run -------------------------------------------------

def deploy_commands(port):
    """The web, worker, scheduler and migrate commands exactly as docker-compose.yml and the
    Dockerfile give them; only the web server's address is moved to loopback."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd_line = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    web = json.loads(cmd_line[len("CMD "):])
    web[web.index("-b") + 1] = "127.0.0.1"
    web[web.index("-p") + 1] = str(port)
    collectstatic = next(line[len("RUN "):] for line in dockerfile.splitlines()
                         if line.startswith("RUN ") and "collectstatic" in line)
    commands = {
        "web": web,
        "worker": services["worker"]["command"],
        "scheduler": services["scheduler"]["command"],
        "migrate": services["migrate"]["command"],
    }
    # The image's ENV (WEB_CONCURRENCY=auto: one server process per core), then compose's.
    app_environment = {}
    for line in dockerfile.splitlines():
        if line.startswith("ENV "):
            app_environment.update(pair.split("=", 1) for pair in shlex.split(line[len("ENV "):]))
    app_environment.update({key: str(value)
                            for key, value in services["web"]["environment"].items()})
    return commands, collectstatic, app_environment


def resolve(command):
    """`python`/`daphne` as the container's PATH finds them: in the smoke virtualenv."""
    first = command[0]
    if (BIN / first).exists():
        return [str(BIN / first), *command[1:]]
    return command


def production_environment(app_environment):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DJANGO_", "PYTEST", "CI_NO_SKIPS", "TEST_REDIS"))}
    env.update(app_environment)  # DEBUG=False, TRUST_X_FORWARDED_PROTO... as compose sets them
    env.update({
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": os.environ["REDIS_URL"],
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    })
    check(env["DEBUG"] == "False", f"docker-compose sets DEBUG={env['DEBUG']!r}, expected False")
    for name in ("STATIC_MANIFEST", "DASHBOARDS_PUBLIC", "TM_ALLOW_ANONYMOUS_MACHINES"):
        env.pop(name, None)  # production defaults
    return env


def manage(env, *args, input_text=None, extra_env=None):
    run_env = {**env, **(extra_env or {})}
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=run_env, input=input_text,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SmokeFailure(f"manage.py {' '.join(args)} exited {result.returncode}:\n"
                           f"{result.stdout}\n{result.stderr}")
    return result.stdout


# --- step 1: every module imports ---------------------------------------------------------------

IMPORT_ALL = r"""
import importlib, pathlib, sys
import django
django.setup()
failed, count = [], 0
for app in sys.argv[1:]:
    for path in sorted(pathlib.Path(app).rglob("*.py")):
        parts = path.with_suffix("").parts
        if "tests" in parts or parts[-1] == "conftest":
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        try:
            importlib.import_module(name)
            count += 1
        except Exception as error:
            failed.append(f"{name}: {type(error).__name__}: {error}")
print(f"{count} modules imported")
if failed:
    print("\n".join(failed))
    sys.exit(1)
"""


def import_every_module(env):
    result = subprocess.run([PYTHON, "-c", IMPORT_ALL, *LOCAL_APPS], cwd=ROOT, capture_output=True,
                            text=True, timeout=300,
                            env={**env, "DJANGO_SETTINGS_MODULE": "trace_project.settings"})
    check(result.returncode == 0,
          f"modules that do not import with requirements.txt alone:\n{result.stdout}{result.stderr}")
    say(result.stdout.strip().splitlines()[0])


# --- the webhook receiver -----------------------------------------------------------------------

class Receiver(http.server.ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.received = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class ReceiverHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def verify_signature(headers, body):
    """As docs/notifications.md tells a receiver to."""
    timestamp = headers.get("X-Monitor-Timestamp", "")
    signature = headers.get("X-Monitor-Signature", "")
    expected = "sha256=" + hmac.new(WEBHOOK_KEY.encode(), timestamp.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


# --- the HTTP client ----------------------------------------------------------------------------

class Client:
    def __init__(self, base):
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def request(self, method, path, body=None, headers=None, form=None):
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.base + path, data=data, headers=headers,
                                         method=method)
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read(), response.geturl()
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.geturl()

    def cookie(self, name):
        return next((c.value for c in self.cookies if c.name == name), None)


def wait_for(what, predicate, timeout, processes):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process in processes.items():
            check(process.poll() is None, f"{name} exited with {process.returncode} while "
                                          f"waiting for {what}")
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise SmokeFailure(f"timed out after {timeout} s waiting for {what}")


# --- the run ------------------------------------------------------------------------------------

def report_failed_run(client, token):
    auth = {"Authorization": f"Token {token}"}
    tests = [{"file_path": "/suite", "file_name": "test_ok.py", "script": "assert True"},
             {"file_path": "/suite", "file_name": "test_broken.py", "script": "assert False"}]
    dry_run = {"machine_name": MACHINE, "timestamp": "2026-11-29 10:00:00.000000",
               "master_scenario": {"file_path": "/suite", "file_name": "master.py", "script": "",
                                   "scenarios": [{"file_path": "/suite", "file_name": "s.py",
                                                  "script": "", "tests": tests}]}}
    status, body, _ = client.request("POST", "/tm_api/dry_run/", dry_run, auth)
    check(status == 201, f"dry_run answered {status}: {body[:500]!r}")
    for test, outcome in zip(tests, ["passed", "failed"]):
        where = {"machine_name": MACHINE, "file_path": test["file_path"],
                 "file_name": test["file_name"]}
        status, body, _ = client.request(
            "POST", "/tm_api/test_start/",
            {**where, "timestamp_start": "2026-11-29 10:00:01.000000"}, auth)
        check(status == 202, f"test_start answered {status}: {body[:500]!r}")
        status, body, _ = client.request(
            "POST", "/tm_api/test_stop/",
            {**where, "status": outcome, "timestamp_stop": "2026-11-29 10:00:02.000000"}, auth)
        check(status == 202, f"test_stop ({outcome}) answered {status}: {body[:500]!r}")
    status, body, _ = client.request("GET", "/tm_api/machines/", headers=auth)
    say("machine reported a run: dry_run 201, 2 x test_start/test_stop 202")


STATIC_REFERENCE = re.compile(r"""(?:src|href)=["'](/static/[^"'?#]+)""")
HASHED_NAME = re.compile(r"\.[0-9a-f]{12}\.(?:css|js|png|svg|ico|woff2?)$")


def check_pages(client, machine_pk):
    status, body, _ = client.request("GET", "/login/")
    check(status == 200, f"/login/ answered {status}")
    csrf = client.cookie("csrftoken")
    check(csrf, "/login/ set no csrftoken cookie")
    status, body, url = client.request(
        "POST", "/login/", form={"username": "smoke", "password": "smoke-password-1234",
                                 "csrfmiddlewaretoken": csrf, "next": "/"},
        headers={"Referer": client.base + "/login/"})
    check(status == 200 and client.cookie("sessionid"),
          f"logging in failed ({status}, {url}): {body[:300]!r}")
    pages = ["/", "/traces/", "/machines/", f"/machines/{machine_pk}/", "/metrics/",
             "/notifications/", "/api/docs/", "/admin/", "/admin/notifications/channel/"]
    static = set()
    for path in pages:
        status, body, url = client.request("GET", path)
        check(status == 200, f"{path} answered {status}: {body[:300]!r}")
        check(not url.rstrip("/").endswith("/login"), f"{path} sent the logged-in user to {url}")
        static.update(STATIC_REFERENCE.findall(body.decode()))
    check(static, "the pages reference no static file")
    unhashed = sorted(path for path in static if not HASHED_NAME.search(path))
    check(not unhashed, f"static files without a manifest hash: {unhashed}")
    for path in sorted(static):
        status, body, _ = client.request("GET", path)
        check(status == 200 and body, f"{path} answered {status}")
    status, body, _ = client.request("GET", "/api/schema/")
    check(status == 200 and b"openapi" in body, f"/api/schema/ answered {status}")
    say(f"{len(pages)} pages and /api/schema/ rendered; their {len(static)} static files "
        f"(hashed names) served")


def main():
    for name in ("DATABASE_URL", "REDIS_URL"):
        check(os.environ.get(name), f"{name} must be set (PostgreSQL and Redis)")
    port = free_port()
    commands, collectstatic, app_environment = deploy_commands(port)
    env = production_environment(app_environment)
    logs = Path(tempfile.mkdtemp(prefix="monitor-smoke-"))

    import_every_module(env)
    manage(env, *commands["migrate"][2:])
    say("migrate (docker-compose's migrate service) done")
    # The Dockerfile's build step, `SECRET_KEY=... python manage.py collectstatic --noinput`,
    # runs without the services' environment: no database, no Redis, DEBUG at its default.
    collect_env = {key: value for key, value in env.items()
                   if key not in ("SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL", "DB_DEFAULT",
                                  "TRUST_X_FORWARDED_PROTO")}
    assignment, _, command = collectstatic.partition(" ")
    key, _, value = assignment.partition("=")
    result = subprocess.run(resolve(shlex.split(command)), cwd=ROOT, env={**collect_env, key: value},
                            capture_output=True, text=True, timeout=300)
    check(result.returncode == 0, f"collectstatic failed:\n{result.stdout}\n{result.stderr}")
    check((ROOT / "staticfiles" / "staticfiles.json").exists(),
          "collectstatic wrote no manifest (staticfiles/staticfiles.json)")
    say(f"collectstatic (the Dockerfile's step): {result.stdout.strip().splitlines()[-1]}")

    manage(env, "createsuperuser", "--noinput", extra_env={
        "DJANGO_SUPERUSER_USERNAME": "smoke", "DJANGO_SUPERUSER_EMAIL": "smoke@example.com",
        "DJANGO_SUPERUSER_PASSWORD": "smoke-password-1234"})
    token = manage(env, "machine_token", "create", "smoke rack", "--machine", MACHINE).strip()
    check(token, "machine_token create printed no token")

    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    manage(env, "shell", "--no-imports", "-c", (
        "from notifications.models import Channel; "
        f"Channel.objects.create(name='smoke webhook', kind='webhook', url={receiver.url!r}, "
        f"secret={WEBHOOK_KEY!r}, rules=['run_failed'])"))
    say("superuser, machine token and JSON-webhook channel created")

    processes, log_files = {}, {}
    try:
        for name in ("web", "worker", "scheduler"):
            log_files[name] = open(logs / f"{name}.log", "w+")
            processes[name] = subprocess.Popen(
                resolve(commands[name]), cwd=ROOT, env=env, stdout=log_files[name],
                stderr=subprocess.STDOUT, start_new_session=True)
        say("started: " + "; ".join(" ".join(commands[name]) for name in processes))
        client = Client(f"http://127.0.0.1:{port}")

        def healthy():
            status, body, _ = client.request("GET", "/healthz") if port_open(port) else (0, b"", "")
            return status == 200 and json.loads(body)

        health = wait_for("/healthz to answer 200", healthy, 60, processes)
        check(health["database"]["vendor"] == "postgresql"
              and health["channel_layer"]["backend"] != "InMemoryChannelLayer",
              f"/healthz says {health}")
        say("/healthz 200 on PostgreSQL + Redis")
        cores = len(os.sched_getaffinity(0))
        if env.get("WEB_CONCURRENCY") == "auto" and cores > 1:  # one core: the server itself
            servers = server_processes(processes["web"].pid)
            check(len(servers) == cores, f"WEB_CONCURRENCY=auto on {cores} cores started "
                                         f"{len(servers)} server processes")
            say(f"{cores} server processes (WEB_CONCURRENCY=auto), each on a socket of its own")

        report_failed_run(client, token)
        headers, body = wait_for("the run_failed webhook", lambda: receiver.received[:1], 60,
                                 processes)[0]
        check(verify_signature(headers, body), f"the webhook's signature does not verify: {headers}")
        payload = json.loads(body)
        check(payload.get("rule") == "run_failed" and MACHINE in json.dumps(payload),
              f"unexpected webhook payload: {payload}")
        say(f"the receiver got the signed run_failed notification: {payload.get('title')!r}")

        machine_pk = manage(env, "shell", "--no-imports", "-c", (
            "from tm_api.models import Machine; "
            f"print(Machine.objects.get(machine_name={MACHINE!r}).pk)")).strip()
        check_pages(client, machine_pk)

        def scheduler_ran():
            log_files["scheduler"].seek(0)
            return re.findall(r"job (\S+): (\w+)", log_files["scheduler"].read())

        runs = wait_for("the scheduler's every-minute jobs", scheduler_ran, 75, processes)
        failed_jobs = [name for name, outcome in runs if outcome != "ok"]
        check(not failed_jobs, f"scheduled jobs did not succeed: {runs}")
        say(f"the scheduler ran {sorted({name for name, _ in runs})}")

        for name, log in log_files.items():
            log.seek(0)
            text = log.read()
            for bad in ("Traceback", "ModuleNotFoundError", "ImportError", " ERROR "):
                check(bad not in text, f"the {name} process logged {bad!r}:\n{text[-4000:]}")
    except SmokeFailure:
        for name, log in log_files.items():
            log.seek(0)
            print(f"--- {name} log (last 3000 characters) ---\n{log.read()[-3000:]}")
        raise
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        receiver.shutdown()
    say("production smoke test passed")


def server_processes(pid):
    """The server processes plumbing.serve started (each runs on a socket it was given)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += (task / "children").read_text().split()
    return [child for child in children
            if b"--fd" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")]


def port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    try:
        main()
    except SmokeFailure as failure:
        print(f"PRODUCTION SMOKE TEST FAILED: {failure}", flush=True)
        sys.exit(1)
