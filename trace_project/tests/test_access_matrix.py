"""Every door, every identity: the expected answer of each URL and websocket path.

The table below is the access rule of the whole project written as data. It is walked for five
real identities (no mocks): an anonymous visitor, a logged-in user, a staff user (a superuser,
so the admin answers), a machine (tm_api's `Authorization: Token ...`) and a tracked project
(tracking's `Authorization: Bearer ...`). A URL or websocket path added to the project without
a row here fails `test_every_url_pattern_has_an_expectation`, so nobody adds a door unchecked.
docs/security.md holds the same table, rendered by `markdown_table()`; a test keeps them equal.
"""

import json
import time
import uuid
from pathlib import Path

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from plumbing.consumers import CLOSE_FORBIDDEN
from plumbing.security import allowed_hosts_origin_validator
from trace_project.asgi import application
from trace_project.routing import websocket_urlpatterns

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parent.parent.parent
IDENTITIES = ("anonymous", "user", "staff", "machine", "project")
HEADINGS = ("anonymous", "logged-in user", "staff", "machine token", "project token")

# Answers, as classes: "2xx", "3xx" (a redirect elsewhere than a login page), "login" (a redirect
# to /login/ or /admin/login/), or an exact status: 401, 403, 404, 405.
OK, REDIRECT, LOGIN = "2xx", "3xx", "login"

# Rows: (method, path template, body kind or None, answers for IDENTITIES in order).
# Path templates take the ids of the objects `world` creates; {fresh_trace} is a new trace for
# every request (so DELETE is checked as each identity, on a trace that exists).
PAGE = (LOGIN, OK, OK, LOGIN, LOGIN)  # a dashboard page
READ = (403, OK, OK, 403, 403)  # a REST read (session only: tokens do not read)
EVERYONE = (OK, OK, OK, OK, OK)

URL_TABLE = {
    "": [("GET", "/", None, EVERYONE)],
    "healthz": [("GET", "/healthz", None, EVERYONE)],
    # The home page's overview: the page is everyone's (its overview only for dashboard readers).
    "overview/panel/": [("GET", "/overview/panel/", None, (403, OK, OK, 403, 403))],
    "api/overview/": [("GET", "/api/overview/", None, READ)],
    "admin/": [("GET", "/admin/", None, (LOGIN, LOGIN, OK, LOGIN, LOGIN))],
    "admin/login/": [("GET", "/admin/login/", None, (OK, OK, REDIRECT, OK, OK))],
    # Non-staff are sent to the admin's index (and from there to its login).
    "admin/logout/": [("GET", "/admin/logout/", None, (REDIRECT, REDIRECT, 405, REDIRECT, REDIRECT))],
    "admin/password_change/": [
        ("GET", "/admin/password_change/", None, (LOGIN, LOGIN, OK, LOGIN, LOGIN))],
    "admin/password_change/done/": [
        ("GET", "/admin/password_change/done/", None, (LOGIN, LOGIN, OK, LOGIN, LOGIN))],
    "admin/autocomplete/": [
        ("GET", "/admin/autocomplete/", None, (LOGIN, LOGIN, 403, LOGIN, LOGIN))],
    "admin/jsi18n/": [("GET", "/admin/jsi18n/", None, (LOGIN, LOGIN, OK, LOGIN, LOGIN))],
    "admin/r/<path:content_type_id>/<path:object_id>/": [
        ("GET", "/admin/r/{user_content_type}/{staff_user}/", None,
         (LOGIN, LOGIN, 404, LOGIN, LOGIN))],
    "admin/auth/user/<id>/password/": [
        ("GET", "/admin/auth/user/{staff_user}/password/", None,
         (LOGIN, LOGIN, OK, LOGIN, LOGIN))],
    "admin/^(?P<app_label>auth|django_tasks_database|traces|tm_api|tracking|notifications|axes)/$": [
        ("GET", "/admin/tm_api/", None, (LOGIN, LOGIN, OK, LOGIN, LOGIN))],
    "admin/(?P<url>.*)$": [("GET", "/admin/no-such-page/", None, (LOGIN, LOGIN, 404, LOGIN, LOGIN))],
    "login/": [("GET", "/login/", None, EVERYONE)],
    # Logging out is a POST (Django 5); a GET must not log anyone out.
    "logout/": [("GET", "/logout/", None, (405,) * 5)],
    "password-reset/": [("GET", "/password-reset/", None, EVERYONE)],
    "password-reset/done/": [("GET", "/password-reset/done/", None, EVERYONE)],
    "password-reset-confirm/<uidb64>/<token>/": [
        ("GET", "/password-reset-confirm/MQ/bad-token/", None, EVERYONE)],
    "password-reset-complete/": [("GET", "/password-reset-complete/", None, EVERYONE)],
    "api/schema/": [("GET", "/api/schema/", None, EVERYONE)],
    "api/docs/": [("GET", "/api/docs/", None, EVERYONE)],
    "docs/": [("GET", "/docs/", None, (REDIRECT,) * 5)],
    # traces
    "traces/": [("GET", "/traces/", None, PAGE)],
    "traces/<trace_ref:trace_id>/": [("GET", "/traces/{trace}/", None, PAGE)],
    "api/trace/<trace_ref:pk>/": [
        ("GET", "/api/trace/{trace}/", None, READ),
        ("DELETE", "/api/trace/{fresh_trace}/", None, (403, OK, OK, 403, 403)),
        ("PUT", "/api/trace/{trace}/", "empty", (403, 405, 405, 403, 403)),
    ],
    "api/traces/": [("GET", "/api/traces/", None, READ)],
    "api/traces/services/": [("GET", "/api/traces/services/", None, READ)],
    # tm_api: machines write with their token only (a session or a project token is no machine)
    "tm_api/dry_run/": [
        ("POST", "/tm_api/dry_run/", "dry_run", (401, 401, 401, OK, 401)),
        ("GET", "/tm_api/dry_run/", None, (401, 401, 401, 405, 401)),
    ],
    "tm_api/test_start/": [("POST", "/tm_api/test_start/", "test_start", (401, 401, 401, OK, 401))],
    "tm_api/test_stop/": [("POST", "/tm_api/test_stop/", "test_stop", (401, 401, 401, OK, 401))],
    "tm_api/batch/": [("POST", "/tm_api/batch/", "tm_batch", (401, 401, 401, OK, 401))],
    "tm_api/junit/": [("POST", "/tm_api/junit/?machine=matrix-writer", "junit",
                       (401, 401, 401, OK, 401))],
    "tm_api/test/<id:pk>": [("GET", "/tm_api/test/{test}", None, READ)],
    "tm_api/scenario/<id:pk>": [("GET", "/tm_api/scenario/{scenario}", None, READ)],
    "tm_api/master_scenario/<id:pk>": [("GET", "/tm_api/master_scenario/{master}", None, READ)],
    "tm_api/machines/": [
        ("GET", "/tm_api/machines/", None, READ),
        ("POST", "/tm_api/machines/", "empty", (403, 405, 405, 403, 403)),
    ],
    "tm_api/machine_dry_run_datas/<id:pk>": [
        ("GET", "/tm_api/machine_dry_run_datas/{machine}", None, READ)],
    "tm_api/machine_last_data/<id:pk>/": [
        ("GET", "/tm_api/machine_last_data/{machine}/", None, READ)],
    "machines/": [("GET", "/machines/", None, PAGE)],
    "machines/<id:pk>/": [("GET", "/machines/{machine}/", None, PAGE)],
    "machines/<id:pk>/last/": [("GET", "/machines/{machine}/last/", None, PAGE)],
    "machines/runs/<id:pk>/": [("GET", "/machines/runs/{run}/", None, PAGE)],
    "machines/script/<str:kind>/<id:pk>/": [
        ("GET", "/machines/script/test/{test}/", None, PAGE),
        ("GET", "/machines/script/nonsense/{test}/", None, (LOGIN, 404, 404, LOGIN, LOGIN)),
    ],
    # The earlier dashboard's page paths redirect to the pages above (which then ask for a login).
    "matchine/<id:pk>": [("GET", "/matchine/{machine}", None, (REDIRECT,) * 5)],
    "machine/<id:pk>/last": [("GET", "/machine/{machine}/last", None, (REDIRECT,) * 5)],
    "machine/run_data/<id:pk>": [("GET", "/machine/run_data/{run}", None, (REDIRECT,) * 5)],
    # tracking: the legacy tracker sends its token in the body; the batch endpoint as Bearer.
    "tracking/<str:project_id>": [
        ("POST", "/tracking/{project}", "seed_event", (401, 401, 401, 403, OK)),
        ("POST", "/tracking/{unknown_uuid}", "seed_event", (401, 401, 401, 404, 404)),
    ],
    "api/tracking/ingest/": [
        ("POST", "/api/tracking/ingest/", "batch", (401, 401, 401, 401, OK))],
    # OTLP/HTTP and Zipkin exporters send the project token as Bearer (a machine's is "Token").
    "v1/traces": [("POST", "/v1/traces", "otlp", (401, 401, 401, 401, OK))],
    "api/v2/spans": [("POST", "/api/v2/spans", "zipkin", (401, 401, 401, 401, OK))],
    "api/tracking/projects/": [("GET", "/api/tracking/projects/", None, READ)],
    "api/tracking/projects/<uuid:project_id>/summary/": [
        ("GET", "/api/tracking/projects/{project}/summary/", None, READ),
        ("GET", "/api/tracking/projects/{unknown_uuid}/summary/", None, (403, 404, 404, 403, 403)),
    ],
    "api/tracking/projects/<uuid:project_id>/requests/": [
        ("GET", "/api/tracking/projects/{project}/requests/", None, READ)],
    "metrics/": [("GET", "/metrics/", None, PAGE)],
    "metrics/<uuid:project_id>/": [("GET", "/metrics/{project}/", None, PAGE)],
    # notifications: the page needs a login even with DASHBOARDS_PUBLIC; the test button staff.
    "notifications/": [("GET", "/notifications/", None, PAGE)],
    "notifications/channels/<int:channel_id>/test/": [
        ("POST", "/notifications/channels/{channel}/test/", "empty",
         (LOGIN, LOGIN, REDIRECT, LOGIN, LOGIN)),
        ("GET", "/notifications/channels/{channel}/test/", None,
         (LOGIN, LOGIN, 405, LOGIN, LOGIN)),
    ],
}

# Every model in the admin, with the staff answer of each of its six pages (everyone else is
# sent to the admin's login). An admin added for a new model fails until it is listed here.
ADMIN_PAGES = ("", "add/", "{id}/history/", "{id}/delete/", "{id}/change/", "{id}/")
ADMIN_STAFF = (OK, OK, OK, OK, OK, REDIRECT)
ADMIN_STAFF_NO_ADD = (OK, 403, OK, OK, OK, REDIRECT)
ADMIN_STAFF_READ_ONLY = (OK, 403, OK, 403, OK, REDIRECT)
ADMIN_MODELS = {
    "auth.group": ADMIN_STAFF,
    "auth.user": ADMIN_STAFF,
    "django_tasks_database.dbtaskresult": ADMIN_STAFF_READ_ONLY,
    "traces.trace": ADMIN_STAFF_NO_ADD,
    "traces.span": ADMIN_STAFF_READ_ONLY,
    "traces.event": ADMIN_STAFF_READ_ONLY,
    "tm_api.machine": ADMIN_STAFF,
    "tm_api.machinetoken": ADMIN_STAFF,
    "tm_api.run": ADMIN_STAFF_NO_ADD,
    "tm_api.masterscenario": ADMIN_STAFF_READ_ONLY,
    "tm_api.test": ADMIN_STAFF_READ_ONLY,
    "tracking.project": ADMIN_STAFF,
    "notifications.channel": ADMIN_STAFF,
    "notifications.notification": ADMIN_STAFF_NO_ADD,
    "notifications.delivery": ADMIN_STAFF_NO_ADD,
    "notifications.job": ADMIN_STAFF_NO_ADD,
    "notifications.cooldown": ADMIN_STAFF,
    "axes.accessattempt": ADMIN_STAFF_NO_ADD,
    "axes.accesslog": ADMIN_STAFF_NO_ADD,
    "axes.accessfailurelog": ADMIN_STAFF_NO_ADD,
}

# With DASHBOARDS_PUBLIC=True, reads open to everyone; writes, the admin and /notifications/
# do not change. Rows: (method, path template, answers for IDENTITIES).
PUBLIC_TABLE = [
    ("GET", "/traces/", EVERYONE),
    ("GET", "/traces/{trace}/", EVERYONE),
    ("GET", "/api/trace/{trace}/", EVERYONE),
    ("DELETE", "/api/trace/{fresh_trace}/", (403, OK, OK, 403, 403)),
    ("GET", "/api/traces/", EVERYONE),
    ("GET", "/api/traces/services/", EVERYONE),
    ("GET", "/tm_api/machines/", EVERYONE),
    ("GET", "/tm_api/machine_last_data/{machine}/", EVERYONE),
    ("GET", "/tm_api/test/{test}", EVERYONE),
    ("GET", "/machines/", EVERYONE),
    ("GET", "/machines/{machine}/last/", EVERYONE),
    ("GET", "/machines/runs/{run}/", EVERYONE),
    ("GET", "/machines/script/test/{test}/", EVERYONE),
    ("GET", "/api/tracking/projects/{project}/summary/", EVERYONE),
    ("GET", "/metrics/", EVERYONE),
    ("GET", "/metrics/{project}/", EVERYONE),
    ("GET", "/notifications/", (LOGIN, OK, OK, LOGIN, LOGIN)),
    ("GET", "/admin/", (LOGIN, LOGIN, OK, LOGIN, LOGIN)),
]

# Websockets. Browser-facing live sockets follow the dashboard rule and refuse with 4003;
# ingestion (/ws/trace/<id>) takes programs without a login. Answers: "open", or a close code
# (None: the handshake is refused without a code). Tokens are not websocket credentials: a
# machine or project token on a handshake counts as anonymous.
OPEN = "open"
LIVE = (CLOSE_FORBIDDEN, OPEN, OPEN, CLOSE_FORBIDDEN, CLOSE_FORBIDDEN)
WS_TABLE = {
    "^ws/trace/(?P<trace_id>[0-9]{1,19})/?$": [("/ws/trace/{new_trace_id}", (OPEN,) * 5)],
    "ws/traces/<id:trace_id>/live/": [("/ws/traces/{trace}/live/", LIVE)],
    # An OTLP or Zipkin trace's page follows it by its 32-hex trace id.
    "^ws/traces/(?P<trace_id>[0-9a-fA-F]{32})/live/$": [
        ("/ws/traces/5b8efff798038103d269b633813fc60c/live/", LIVE)],
    "ws/machine/status/": [("/ws/machine/status/", LIVE)],
    "ws/machine/<id:pk>/runs/": [("/ws/machine/{machine}/runs/", LIVE)],
    "ws/machine/<id:pk>/last/": [("/ws/machine/{machine}/last/", LIVE)],
    "ws/metrics/<uuid:project_id>/": [
        ("/ws/metrics/{project}/", LIVE),
        ("/ws/metrics/{unknown_uuid}/", (4003, 4004, 4004, 4003, 4003)),
    ],
    "": [("/ws/trace/not-a-number", (None,) * 5), ("/ws/nowhere/", (None,) * 5)],  # catch-all
}
WS_PUBLIC = (OPEN,) * 5  # every live socket with DASHBOARDS_PUBLIC=True


# --- the world the doors lead to ------------------------------------------------------------

class World:
    """Real rows for every path parameter and the five identities' credentials."""

    def __init__(self, django_user_model):
        from axes.models import AccessAttempt, AccessFailureLog, AccessLog
        from django.contrib.contenttypes.models import ContentType

        from notifications.models import Channel, Cooldown, Job
        from notifications.services import send_test_notification
        from tm_api.auth import issue_token
        from tm_api.models import MasterScenario, Test
        from tm_api.services import record_dry_run
        from tracking import services as tracking_services
        from tracking.models import Project
        from tracking.wire import parse_batch_event

        self.user = django_user_model.objects.create_user("ada", "ada@example.com", "pw-ada-1815")
        self.staff = django_user_model.objects.create_superuser(
            "grace", "grace@example.com", "pw-grace-1906")
        self.machine_token_row, self.machine_token = issue_token("matrix team")
        self.project_row, self.project_token = Project.create_with_token("Matrix shop")
        tracking_services.ingest_events(self.project_row, [parse_batch_event(
            {"time": time.time() - 5, "duration_ms": 3.0, "path": "/", "status": 200})])
        self.run = record_dry_run("matrix-rack", timezone.now(), {
            "file_path": "/suite", "file_name": "master.py", "script": "print(1)",
            "scenarios": [{"file_path": "/suite", "file_name": "scenario.py", "script": "",
                           "tests": [{"file_path": "/suite", "file_name": "test_a.py",
                                      "script": "assert True"}]}],
        })
        self.master = MasterScenario.objects.get(run=self.run)
        self.test_row = Test.objects.filter(scenario__master_scenario=self.master).first()
        self.trace_id = self.new_trace()
        self.channel = Channel.objects.create(
            name="matrix hook", kind="webhook", url="http://127.0.0.1:9/hook", rules=["test"])
        send_test_notification(self.channel, requested_by="matrix")
        Job.objects.create(name="matrix_job")
        Cooldown.objects.create(rule="test", key="matrix", last_raised_at=timezone.now())
        access = {"user_agent": "matrix", "ip_address": "192.0.2.1", "username": "nobody",
                  "http_accept": "*/*", "path_info": "/login/"}
        AccessAttempt.objects.create(**access, get_data="", post_data="", failures_since_start=1)
        AccessLog.objects.create(**access)
        AccessFailureLog.objects.create(**access)
        Group.objects.create(name="matrix group")
        self.ids = {
            "trace": self.trace_id,
            "machine": self.run.machine_id,
            "run": self.run.pk,
            "master": self.master.pk,
            "scenario": self.test_row.scenario_id,
            "test": self.test_row.pk,
            "project": str(self.project_row.public_id),
            "unknown_uuid": str(uuid.uuid4()),
            "channel": self.channel.pk,
            "staff_user": self.staff.pk,
            "user_content_type": ContentType.objects.get_for_model(self.staff).pk,
        }
        self.next_trace_id = 9_000_000
        self.clients = {}

    _trace_counter = 1000

    def new_trace(self) -> int:
        from traces.tests.helpers import store_trace

        World._trace_counter += 1
        trace_id = World._trace_counter
        store_trace(trace_id, [
            {"type": "TRACE_START", "timestamp": 10, "group_id": "t"},
            {"type": "SPAN_START", "timestamp": 11, "group_id": "s", "name": "load"},
            {"type": "SPAN_END", "timestamp": 12, "group_id": "s"},
            {"type": "EVENT", "timestamp": 11.5, "name": "cache hit"},
            {"type": "TRACE_END", "timestamp": 13, "group_id": "t"},
        ], publish=False)
        return trace_id

    def fill(self, template: str) -> str:
        ids = dict(self.ids)
        if "{fresh_trace}" in template:
            ids["fresh_trace"] = self.new_trace()
        if "{new_trace_id}" in template:
            self.next_trace_id += 1
            ids["new_trace_id"] = self.next_trace_id
        return template.format(**ids)

    def client(self, identity: str, **extra) -> Client:
        if not extra:
            if identity not in self.clients:
                self.clients[identity] = self.client(identity, enforce_csrf_checks=False)
            return self.clients[identity]
        if identity == "machine":
            return Client(HTTP_AUTHORIZATION=f"Token {self.machine_token}", **extra)
        if identity == "project":
            return Client(HTTP_AUTHORIZATION=f"Bearer {self.project_token}", **extra)
        client = Client(**extra)
        if identity == "user":
            client.force_login(self.user)
        elif identity == "staff":
            client.force_login(self.staff)
        return client

    def body(self, kind: str, identity: str):
        if kind == "empty":
            return {}
        if kind == "dry_run":
            return {"machine_name": "matrix-writer", "timestamp": "2024-05-01 10:00:00",
                    "master_scenario": {"file_path": "/w", "file_name": "m.py", "script": "",
                                        "scenarios": [{"file_path": "/w", "file_name": "s.py",
                                                       "script": "", "tests": [
                                                           {"file_path": "/w", "file_name":
                                                            "t.py", "script": ""}]}]}}
        if kind == "test_start":
            return {"machine_name": "matrix-writer", "file_path": "/w", "file_name": "t.py"}
        if kind == "test_stop":
            return {"machine_name": "matrix-writer", "file_path": "/w", "file_name": "t.py",
                    "status": "passed"}
        if kind == "tm_batch":
            return {"machine_name": "matrix-writer", "reports": [
                {"type": "test_start", "file_path": "/w", "file_name": "t.py"}]}
        if kind == "seed_event":
            # The legacy tracker's token travels in the body: each identity sends the secret it
            # holds (a machine token where a project token belongs is a wrong token).
            body = seed_event()
            secret = {"machine": self.machine_token, "project": self.project_token}.get(identity)
            if secret:
                body["project_token"] = secret
            return body
        if kind == "batch":
            return {"events": [{"time": time.time() - 1, "duration_ms": 2.0, "path": "/x",
                                "status": 200}]}
        if kind == "otlp":
            return {"resourceSpans": []}
        if kind == "zipkin":
            return []
        raise ValueError(kind)


@pytest.fixture
def world(django_user_model, transactional_db):
    return World(django_user_model)


def seed_event(**event_data):
    """A body as the legacy tracker sends it, without its project_token."""
    data = {"view_name": "home", "header_data": {"HTTP_HOST": "shop.example"},
            "full_url": "http://shop.example/", "ra_session_id": "s",
            "time_request_received_ns": time.time_ns() - 10**9,
            "processing_time_ns": 1_000_000, "response_data": {"status_code": 200}}
    data.update(event_data)
    return {"event_type": "page_view", "ra_tracker_version": "v2.0.5", "event_data": data}


# --- checking answers -----------------------------------------------------------------------

def answer_class(response) -> str | int:
    code = response.status_code
    if 300 <= code < 400:
        location = response.get("Location", "")
        return LOGIN if location.startswith(("/login/", "/admin/login/")) else REDIRECT
    if 200 <= code < 300:
        return OK
    return code


def request(world, identity, method, template, body_kind):
    client = world.client(identity)
    path = world.fill(template)
    kwargs = {}
    if body_kind == "junit":  # a JUnit XML report
        kwargs = {"data": "<testsuite name='s'><testcase name='t'/></testsuite>",
                  "content_type": "application/xml"}
    elif body_kind is not None:
        kwargs = {"data": json.dumps(world.body(body_kind, identity)),
                  "content_type": "application/json"}
    return path, getattr(client, method.lower())(path, **kwargs)


def walk_urls(patterns=None, prefix=""):
    """Every URL pattern of the project, as the string the table is keyed by."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from walk_urls(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def admin_model_patterns() -> dict[str, tuple[str, str]]:
    """URL pattern -> (model label, page) for the six pages of each model in the admin."""
    routes = {}
    for model in admin.site._registry:
        label = f"{model._meta.app_label}/{model._meta.model_name}/"
        base = "admin/" + label
        for page in ADMIN_PAGES:
            pattern = base + page.replace("{id}", "<path:object_id>")
            routes[pattern] = (f"{model._meta.app_label}.{model._meta.model_name}", page)
    return routes


def test_every_url_pattern_has_an_expectation():
    admin_routes = admin_model_patterns()
    registered = {label for label, _ in admin_routes.values()}
    assert registered == set(ADMIN_MODELS), "admin models differ from ADMIN_MODELS"
    missing = [p for p in walk_urls() if p not in URL_TABLE and p not in admin_routes]
    assert missing == [], f"URL patterns without a row in URL_TABLE: {missing}"
    stale = [p for p in URL_TABLE if p not in set(walk_urls())]
    assert stale == [], f"rows of URL_TABLE for patterns that no longer exist: {stale}"


def test_every_websocket_path_has_an_expectation():
    paths = [str(entry.pattern) for entry in websocket_urlpatterns]
    assert sorted(paths) == sorted(WS_TABLE)


def mismatches_of(world, rows):
    found = []
    for method, template, body_kind, expected in rows:
        for identity, want in zip(IDENTITIES, expected):
            path, response = request(world, identity, method, template, body_kind)
            got = answer_class(response)
            if got != want:
                found.append(f"{method} {path} as {identity}: expected {want}, got {got} "
                             f"({response.status_code} {response.get('Location', '')})")
    return found


def test_every_url_answers_each_identity_as_expected(world, settings):
    settings.DASHBOARDS_PUBLIC = False
    settings.TM_ALLOW_ANONYMOUS_MACHINES = False
    rows = [row for pattern in walk_urls() if pattern in URL_TABLE for row in URL_TABLE[pattern]]
    found = mismatches_of(world, rows)
    assert not found, "\n".join(found)


def admin_object_ids(world) -> dict[str, str]:
    ids = {}
    for model in admin.site._registry:
        label = f"{model._meta.app_label}.{model._meta.model_name}"
        row = model._default_manager.order_by("pk").first()
        assert row is not None, f"world has no {label} for the admin pages"
        ids[label] = str(row.pk)
    return ids


def test_every_admin_page_is_for_staff_only(world, settings):
    settings.DASHBOARDS_PUBLIC = True  # the admin does not open with the dashboards
    ids = admin_object_ids(world)
    rows = []
    for label, page in admin_model_patterns().values():
        staff = ADMIN_MODELS[label][ADMIN_PAGES.index(page)]
        app, model = label.split(".")
        path = f"/admin/{app}/{model}/" + page.replace("{id}", ids[label])
        rows.append(("GET", path, None, (LOGIN, LOGIN, staff, LOGIN, LOGIN)))
    found = mismatches_of(world, rows)
    assert not found, "\n".join(found)


def test_public_dashboards_open_reads_only(world, settings):
    settings.DASHBOARDS_PUBLIC = True
    settings.TM_ALLOW_ANONYMOUS_MACHINES = False
    rows = [(method, template, None, expected) for method, template, expected in PUBLIC_TABLE]
    rows += [("POST", "/tm_api/dry_run/", "dry_run", (401, 401, 401, OK, 401)),
             ("POST", "/api/tracking/ingest/", "batch", (401, 401, 401, 401, OK))]
    found = mismatches_of(world, rows)
    assert not found, "\n".join(found)


def test_session_writes_need_the_csrf_token_and_token_writes_do_not(world, settings):
    """Cookies ride along on cross-site requests: a session write without the CSRF token is
    refused; machines and trackers (no cookie) need none."""
    trace_path = world.fill("/api/trace/{fresh_trace}/")
    user = Client(enforce_csrf_checks=True)
    user.force_login(world.user)
    assert user.delete(trace_path).status_code == 403
    staff = Client(enforce_csrf_checks=True)
    staff.force_login(world.staff)
    assert staff.post(world.fill("/notifications/channels/{channel}/test/")).status_code == 403
    machine = world.client("machine", enforce_csrf_checks=True)
    response = machine.post("/tm_api/dry_run/", json.dumps(world.body("dry_run", "machine")),
                            content_type="application/json")
    assert response.status_code == 201
    project = world.client("project", enforce_csrf_checks=True)
    response = project.post("/api/tracking/ingest/", json.dumps(world.body("batch", "project")),
                            content_type="application/json")
    assert response.status_code == 200


# --- websockets -------------------------------------------------------------------------------

OWN_ORIGIN = b"http://monitor.example.com"
FOREIGN_ORIGIN = b"http://evil.example"


def websocket_headers(world, identity, origin):
    headers = [(b"origin", origin)] if origin else []
    if identity in ("user", "staff"):
        client = world.client(identity)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    elif identity == "machine":
        headers.append((b"authorization", f"Token {world.machine_token}".encode()))
    elif identity == "project":
        headers.append((b"authorization", f"Bearer {world.project_token}".encode()))
    return headers


async def ws_answer(app, path, headers):
    communicator = WebsocketCommunicator(app, path, headers=headers)
    connected, code = await communicator.connect(timeout=3)
    if connected:
        # Only the answer matters; a consumer still leaving its groups is cancelled.
        await communicator.disconnect(timeout=0.2)
        return OPEN
    # A handshake refused without a code of the app's own (the Origin check, a bad trace id)
    # shows as 1000 here and as HTTP 403 to a real client.
    return None if code == 1000 else code


def site_stack():
    """trace_project.asgi's websocket stack, built again under the test's ALLOWED_HOSTS (the
    module's own was built at import, before the test could name the site's host)."""
    return allowed_hosts_origin_validator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))


async def ws_mismatches(world, rows):
    from asgiref.sync import sync_to_async

    app = site_stack()
    found = []
    for template, expected in rows:
        for identity, want in zip(IDENTITIES, expected):
            path = await sync_to_async(world.fill)(template)
            headers = await sync_to_async(websocket_headers)(world, identity, OWN_ORIGIN)
            got = await ws_answer(app, path, headers)
            if got != want:
                found.append(f"{path} as {identity}: expected {want}, got {got}")
    return found


@pytest.mark.asyncio
async def test_every_websocket_answers_each_identity_as_expected(world, settings):
    settings.ALLOWED_HOSTS = ["monitor.example.com"]
    settings.DASHBOARDS_PUBLIC = False
    rows = [row for rows in WS_TABLE.values() for row in rows]
    found = await ws_mismatches(world, rows)
    assert not found, "\n".join(found)


@pytest.mark.asyncio
async def test_public_dashboards_open_every_live_socket(world, settings):
    settings.ALLOWED_HOSTS = ["monitor.example.com"]
    settings.DASHBOARDS_PUBLIC = True
    rows = [(template, WS_PUBLIC) for rows in WS_TABLE.values() for template, expected in rows
            if expected[0] == CLOSE_FORBIDDEN and "{unknown_uuid}" not in template]
    assert len(rows) == 6
    found = await ws_mismatches(world, rows)
    assert not found, "\n".join(found)


@pytest.mark.asyncio
async def test_every_websocket_refuses_a_foreign_origin(world, settings):
    """A page of another site may not open any socket, not even with the visitor's cookie:
    through the project's own ASGI application, and through the same stack under an
    ALLOWED_HOSTS where the site's own origin is accepted (so the refusal is the Origin's)."""
    from asgiref.sync import sync_to_async

    settings.ALLOWED_HOSTS = ["monitor.example.com"]
    settings.DASHBOARDS_PUBLIC = True
    stack = site_stack()
    checked = 0
    for rows in WS_TABLE.values():
        for template, expected in rows:
            for identity in ("anonymous", "staff"):
                path = await sync_to_async(world.fill)(template)
                foreign = await sync_to_async(websocket_headers)(world, identity, FOREIGN_ORIGIN)
                assert await ws_answer(application, path, foreign) is None, path
                assert await ws_answer(stack, path, foreign) is None, path
                opens_when_public = expected[0] == CLOSE_FORBIDDEN and "{unknown_uuid}" not in template
                if expected[IDENTITIES.index(identity)] == OPEN or opens_when_public:
                    path = await sync_to_async(world.fill)(template)
                    own = await sync_to_async(websocket_headers)(world, identity, OWN_ORIGIN)
                    assert await ws_answer(stack, path, own) == OPEN, path
                checked += 1
    assert checked == 2 * sum(len(rows) for rows in WS_TABLE.values())


@pytest.mark.asyncio
async def test_metrics_socket_refuses_anonymous_before_looking_the_project_up(world, settings):
    settings.ALLOWED_HOSTS = ["monitor.example.com"]
    settings.DASHBOARDS_PUBLIC = False
    unknown = f"/ws/metrics/{uuid.uuid4()}/"
    assert await ws_answer(site_stack(), unknown, [(b"origin", OWN_ORIGIN)]) == CLOSE_FORBIDDEN


# --- the table in the docs ------------------------------------------------------------------

def _cell(answer) -> str:
    return {OK: "2xx", REDIRECT: "3xx", LOGIN: "→ login", OPEN: "open", None: "refused"}.get(
        answer, str(answer))


def markdown_table() -> str:
    lines = ["| method | path | " + " | ".join(HEADINGS) + " |",
             "| --- | --- |" + " --- |" * len(HEADINGS)]
    for pattern in URL_TABLE:
        for method, template, _, expected in URL_TABLE[pattern]:
            shown = template.replace("{fresh_trace}", "{trace}")
            cells = " | ".join(_cell(answer) for answer in expected)
            lines.append(f"| {method} | `{shown}` | {cells} |")
    no_add = sorted(label for label, pages in ADMIN_MODELS.items() if pages[1] == 403)
    read_only = sorted(label for label, pages in ADMIN_MODELS.items() if pages[3] == 403)
    lines.append(
        f"| GET | `/admin/<app>/<model>/…` ({len(ADMIN_MODELS)} models × 6 pages) | → login | "
        f"→ login | 2xx (`<id>/` 3xx); add/ 403 for {', '.join(no_add)}; delete/ 403 for "
        f"{', '.join(read_only)} | → login | → login |")
    for pattern in WS_TABLE:
        for template, expected in WS_TABLE[pattern]:
            cells = " | ".join(_cell(answer) for answer in expected)
            shown = template.replace("{new_trace_id}", "{id}")
            lines.append(f"| WS | `{shown}` | {cells} |")
    return "\n".join(lines) + "\n"


def test_docs_show_this_table():
    docs = (ROOT / "README.md").read_text()
    assert markdown_table() in docs, (
        "The README's access matrix is out of date; paste in the output of "
        "`python -c 'from trace_project.tests.test_access_matrix import markdown_table as t; "
        "print(t())'` (with DJANGO_SETTINGS_MODULE set)")


# --- tokens: stored hashed, compared in constant time ---------------------------------------

def text_columns():
    from django.apps import apps
    from django.db import models

    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, (models.CharField, models.TextField)):
                yield model, field.name


@pytest.mark.django_db
def test_the_database_holds_no_plaintext_token(django_user_model):
    """Tokens made by the commands people use: afterwards no text column of any table holds
    the secret, nor its part after the prefix; only the SHA-256 digest is there."""
    import hashlib
    from io import StringIO

    from django.core.management import call_command

    from tm_api.models import MachineToken
    from tracking.models import Project

    out = StringIO()
    call_command("machine_token", "create", "lab rack 3", "--machine", "rack-3", stdout=out,
                 stderr=StringIO())
    machine_secret = out.getvalue().strip()
    out = StringIO()
    call_command("create_project", "Shop", stdout=out)
    project = json.loads(out.getvalue())
    out = StringIO()
    call_command("rotate_project_token", project["id"], stdout=out)
    rotated_secret = json.loads(out.getvalue())["token"]
    secrets = [machine_secret, project["token"], rotated_secret]
    assert machine_secret.startswith("tm_") and project["token"].startswith("rat_")

    # Each works (so they are the real secrets) ...
    response = Client(HTTP_AUTHORIZATION=f"Bearer {rotated_secret}").post(
        "/api/tracking/ingest/", json.dumps({"events": []}), content_type="application/json")
    assert response.status_code == 200
    response = Client(HTTP_AUTHORIZATION=f"Token {machine_secret}").post(
        "/tm_api/test_start/", json.dumps({"machine_name": "rack-3", "file_path": "/",
                                           "file_name": "x.py"}),
        content_type="application/json")
    assert response.status_code == 409  # authenticated: only the machine has no run yet

    # ... and none is stored anywhere, in whole or without its prefix.
    checked = 0
    for model, name in text_columns():
        for secret in secrets:
            body = secret.split("_", 1)[1]
            hits = model._default_manager.filter(**{f"{name}__contains": body[:20]}).count()
            assert hits == 0, f"{model._meta.label}.{name} holds a token"
        checked += 1
    assert checked > 20
    digest = MachineToken.objects.get().digest
    assert digest == hashlib.sha256(machine_secret.encode()).hexdigest()
    row = Project.objects.get(public_id=project["id"])
    assert row.token_digest == hashlib.sha256(rotated_secret.encode()).hexdigest()
    assert row.token_hint == rotated_secret[:6] + "…"


@pytest.mark.django_db
def test_project_tokens_are_compared_in_constant_time(monkeypatch):
    """Both tracking ingest paths decide with hmac.compare_digest on the digests (observed
    through a spy on the real function, which still decides)."""
    import hmac

    from plumbing import tokens
    from tracking.models import Project

    project, secret = Project.create_with_token("Timing")
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    response = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").post(
        "/api/tracking/ingest/", json.dumps({"events": []}), content_type="application/json")
    assert response.status_code == 200
    assert calls == [(tokens.token_digest(secret), project.token_digest)]
    calls.clear()
    seed = seed_event()
    seed["project_token"] = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    response = Client().post(f"/tracking/{project.public_id}", json.dumps(seed),
                             content_type="application/json")
    assert response.status_code == 403
    assert len(calls) == 1 and calls[0][1] == project.token_digest
