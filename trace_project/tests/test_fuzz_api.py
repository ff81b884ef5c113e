"""Property-based fuzzing of the REST API from its own OpenAPI schema (schemathesis).

Every operation in /api/schema/ is fed generated requests, valid ones (positive) and ones that
break the schema (negative), against a real daphne process on the test database, with the
credentials each operation takes: a logged-in staff session (with its CSRF token), a machine
token (`Authorization: Token ...`), a tracking project token (`Authorization: Bearer ...`).
Path ids are drawn half the time from rows that exist, so the generated requests reach the
views' real code and not only 401/403/404. Each answer must be:

- no 5xx (`not_a_server_error`);
- a status code the schema documents for the operation (`status_code_conformance`);
- the content type the schema documents (`content_type_conformance`);
- a body that matches the documented schema of that status (`response_schema_conformance`).

A third mode, hostile, sends valid requests with one body value or query parameter replaced by
a value that once broke something (HOSTILE_VALUES: NUL and lone surrogates, a 1 MB string,
numbers of 401 digits or beyond 64 bits, dates near year 1 or 9999 and offsets PostgreSQL does
not know, nesting).

CI runs FUZZ_API_EXAMPLES (default 12) examples per operation and mode; bench/fuzz_api.py runs
the same harness (`fuzz_operation`) with many more.
"""

import os
import random
import time
from dataclasses import dataclass, field

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.integration]

EXAMPLES = int(os.environ.get("FUZZ_API_EXAMPLES", "12"))
MODES = ("positive", "negative", "hostile")
STAFF_PASSWORD = "fuzz-staff-password-1"

# Which credentials each operation is called with. A new operation in the schema fails
# test_every_operation_is_fuzzed until it is listed here.
OPERATIONS = {
    "GET /api/trace/{id}/": "session",
    "DELETE /api/trace/{id}/": "session",
    "GET /api/traces/": "session",
    "GET /api/traces/services/": "session",
    "GET /api/overview/": "session",
    "POST /api/tracking/ingest/": "project_token",
    "GET /api/tracking/projects/": "session",
    "GET /api/tracking/projects/{project_id}/requests/": "session",
    "GET /api/tracking/projects/{project_id}/summary/": "session",
    "POST /tm_api/dry_run/": "machine_token",
    "GET /tm_api/machine_dry_run_datas/{id}": "session",
    "GET /tm_api/machine_last_data/{id}/": "session",
    "GET /tm_api/machines/": "session",
    "GET /tm_api/master_scenario/{id}": "session",
    "GET /tm_api/scenario/{id}": "session",
    "GET /tm_api/test/{id}": "session",
    "POST /tm_api/test_start/": "machine_token",
    "POST /tm_api/test_stop/": "machine_token",
    "POST /tm_api/batch/": "machine_token",
    "POST /tm_api/junit/": "machine_token",
    "POST /tracking/{project_id}": "none",  # the legacy tracker route: the token is in the body
}

# Known bugs in code this suite does not own (traces/, tm_api/, tracking/ are other helpers'):
# failures matching one are counted as known, not as new, by the fuzzer; each has a
# deterministic reproduction below, xfail(strict=True), so that its fix shows up as XPASS.
# Format: name -> (operations, predicate(failure, response), reason). None known today.
KNOWN_BUGS: dict = {}


def known_bug(key: str, failure, response) -> str | None:
    for name, (operations, matches, _) in KNOWN_BUGS.items():
        if key in operations and matches(failure, response):
            return name
    return None


def tame_case(key: str, case) -> None:
    """Cases changed on purpose, each for a bug too costly to trigger in CI."""
    if key == "GET /api/tracking/projects/{project_id}/summary/" and case.query:
        # Bug (tracking): the summary's series has one point per step (an hour for long
        # windows) from `since` to `until` with no bound, so ?since=0352-02-17T12:00:11 keeps
        # the server busy for minutes building ~15 million points. Dates are moved to 2026.
        for name in ("since", "until"):
            value = case.query.get(name)
            if isinstance(value, str) and value[:4].isdigit():
                case.query[name] = "2026" + value[4:]


def _nested(depth: int) -> list:
    value = []
    for _ in range(depth - 1):
        value = [value]
    return value


# The hostile mode: a valid request with one value replaced by one of these (found by an
# adversarial pass: each broke a page, lost good data or answered 500 once).
HOSTILE_VALUES = [
    "nul\x00inside", "\ud800", "lone \udfff surrogate", "x" * 1_000_000,
    10**20, 10**400, -(10**400), 1e300, -1e300, 2**63, -(2**63) - 1,
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01 00:00:00",
    "2024-01-01T00:00:00+20:23", "9e999999999", "1e-999999999", "9" * 401,
    _nested(600),  # deep, yet within what a client's own JSON encoder writes
    {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}},
]
# In a query string or a form body: what a URL can carry (no lone surrogate: it has no UTF-8
# encoding).
HOSTILE_QUERY_VALUES = [value for value in HOSTILE_VALUES
                        if isinstance(value, (int, float)) or (
                            isinstance(value, str) and "\ud800" not in value
                            and "\udfff" not in value and len(value) < 10_000)]


def _leaves(value, path=()):
    """Paths of the scalar leaves of a JSON value (the value itself if it is one)."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list) and value:
        for index, child in enumerate(value):
            yield from _leaves(child, (*path, index))
    else:
        yield path


def make_hostile(case, pick: int) -> str:
    """Replaces one body leaf or query value of a valid case by a hostile value; says which."""
    body = getattr(case, "body", None)
    if isinstance(body, (dict, list)):
        leaves = list(_leaves(body))
        path = leaves[pick % len(leaves)]
        # A form body is encoded as a URL is: it cannot carry a lone surrogate either.
        values = HOSTILE_VALUES if "json" in (case.media_type or "") else HOSTILE_QUERY_VALUES
        value = values[(pick // 7) % len(values)]
        if not path:
            case.body = value
        else:
            parent = body
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = value
        return f"body{list(path)} = {str(value)[:40]!r}"
    if case.query:
        name = sorted(case.query)[pick % len(case.query)]
        value = HOSTILE_QUERY_VALUES[(pick // 7) % len(HOSTILE_QUERY_VALUES)]
        case.query[name] = value
        return f"query {name} = {str(value)[:40]!r}"
    return "nothing to make hostile"


def checks():
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance,
            response_schema_conformance]


# --- the world the fuzzer works in --------------------------------------------------------------

@dataclass
class FuzzWorld:
    """A running server and credentials for it, plus ids of rows that exist there."""

    base_url: str
    session_cookies: dict
    csrf_token: str
    machine_token: str
    project_token: str
    known: dict = field(default_factory=dict)  # path parameter name -> existing values

    def headers(self, credentials: str) -> dict:
        if credentials == "session":
            cookie = "; ".join(f"{k}={v}" for k, v in self.session_cookies.items())
            return {"Cookie": cookie, "X-CSRFToken": self.csrf_token}
        if credentials == "machine_token":
            return {"Authorization": f"Token {self.machine_token}"}
        if credentials == "project_token":
            return {"Authorization": f"Bearer {self.project_token}"}
        return {}


def login(base_url: str, username: str, password: str) -> requests.Session:
    """Log in through the real login form; the session carries sessionid and csrftoken."""
    session = requests.Session()
    session.get(f"{base_url}/login/", timeout=10).raise_for_status()
    response = session.post(
        f"{base_url}/login/",
        data={"username": username, "password": password,
              "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base_url}/login/"}, allow_redirects=False, timeout=10,
    )
    assert response.status_code == 302, f"login failed: {response.status_code}"
    return session


def build_world(base_url: str) -> FuzzWorld:
    """Create a staff user, a machine token, a tracking project and some data (through the ORM
    of this process, which must use the server's database, and through the real endpoints)."""
    from django.contrib.auth import get_user_model

    from tm_api.auth import issue_token
    from tm_api.models import Machine, MasterScenario, Scenario, Test
    from traces.tests.helpers import store_trace
    from tracking.models import Project

    User = get_user_model()
    User.objects.filter(username="fuzz-staff").delete()
    User.objects.create_user("fuzz-staff", password=STAFF_PASSWORD, is_staff=True)
    _, machine_secret = issue_token("fuzz team token")
    project, project_token = Project.create_with_token("fuzz project")

    # A complete trace and an open one.
    store_trace(9001, [{"type": "TRACE_START", "timestamp": 10, "group_id": "t"},
                       {"type": "SPAN_START", "timestamp": 11, "group_id": "s", "name": "db"},
                       {"type": "EVENT", "timestamp": 12, "name": "hit"},
                       {"type": "SPAN_END", "timestamp": 13, "group_id": "s"},
                       {"type": "TRACE_END", "timestamp": 20, "group_id": "t"}])
    store_trace(9002, [{"type": "SPAN_START", "timestamp": 1, "group_id": "a", "name": "open"}])

    machine_headers = {"Authorization": f"Token {machine_secret}"}
    dry_run = {
        "machine_name": "fuzz-machine", "timestamp": "2024-05-01 10:00:00.000001",
        "master_scenario": {
            "file_path": "/suite", "file_name": "master.py", "script": "print(1)",
            "scenarios": [{"file_path": "/suite/a", "file_name": "a.py", "script": "a()",
                           "tests": [{"file_path": "/suite/a", "file_name": "t1.py",
                                      "script": "t1()"},
                                     {"file_path": "/suite/a", "file_name": "t2.py",
                                      "script": "t2()"}]}]},
    }
    requests.post(f"{base_url}/tm_api/dry_run/", json=dry_run, headers=machine_headers,
                  timeout=10).raise_for_status()
    test = {"machine_name": "fuzz-machine", "file_path": "/suite/a", "file_name": "t1.py"}
    requests.post(f"{base_url}/tm_api/test_start/", json=test, headers=machine_headers,
                  timeout=10).raise_for_status()
    requests.post(f"{base_url}/tm_api/test_stop/", headers=machine_headers, timeout=10,
                  json={**test, "status": "passed",
                        "timestamp_stop": "2024-05-01 10:00:05"}).raise_for_status()
    stored = requests.post(f"{base_url}/api/tracking/ingest/", timeout=10,
                           headers={"Authorization": f"Bearer {project_token}"},
                           json={"events": [{"path": "/x", "method": "GET", "status": 200,
                                             "duration_ms": 12.5, "time": time.time() - 60}]})
    stored.raise_for_status()
    assert stored.json()["accepted"] == 1, stored.text

    session = login(base_url, "fuzz-staff", STAFF_PASSWORD)
    return FuzzWorld(
        base_url=base_url,
        session_cookies=dict(session.cookies),
        csrf_token=session.cookies["csrftoken"],
        machine_token=machine_secret,
        project_token=project_token,
        known={
            "/api/trace/": [9001, 9002],
            "/tm_api/machine_": list(Machine.objects.values_list("pk", flat=True)),
            "/tm_api/master_scenario/": list(MasterScenario.objects.values_list("pk", flat=True)),
            "/tm_api/scenario/": list(Scenario.objects.values_list("pk", flat=True)),
            "/tm_api/test/": list(Test.objects.values_list("pk", flat=True)),
            "/api/tracking/projects/": [str(project.public_id)],
            "/tracking/": [str(project.public_id)],
        },
    )


def load_schema(base_url: str):
    import schemathesis

    return schemathesis.openapi.from_url(f"{base_url}/api/schema/?format=json")


def known_values(world: FuzzWorld, path: str) -> list:
    for prefix, values in world.known.items():
        if path.startswith(prefix):
            return values
    return []


# --- the harness (shared with bench/fuzz_api.py) ------------------------------------------------

@dataclass
class FuzzResult:
    operation: str
    mode: str
    cases: int = 0
    seconds: float = 0.0
    failures: list = field(default_factory=list)  # (title, reproduction) per distinct failure
    known: dict = field(default_factory=dict)  # known bug name -> cases that hit it
    statuses: dict = field(default_factory=dict)
    unsatisfiable: bool = False  # the schema leaves nothing to generate in this mode


def fuzz_operation(schema, world: FuzzWorld, key: str, mode: str, examples: int,
                   seed: int | None = None, timeout: float = 10) -> FuzzResult:
    """Run `examples` generated cases of one operation in one mode (positive/negative); collects
    every distinct failure rather than stopping at the first, so a bench run reports them all."""
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.core.failures import FailureGroup

    method, path = key.split(" ", 1)
    operation = schema[path][method]
    headers = world.headers(OPERATIONS[key])
    existing = known_values(world, path)
    # hostile: valid cases with one value replaced by one of HOSTILE_VALUES.
    generation_mode = (GenerationMode.NEGATIVE if mode == "negative"
                       else GenerationMode.POSITIVE)
    strategy = operation.as_strategy(generation_mode=generation_mode)
    result = FuzzResult(key, mode)
    http = requests.Session()
    check_list = checks()

    def record(title, reproduction):
        if title not in {t for t, _ in result.failures}:
            result.failures.append((title, reproduction))

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is not None,
              phases=[Phase.explicit, Phase.generate],  # no shrinking: report, don't minimise
              suppress_health_check=list(HealthCheck))
    @given(case=strategy, pick=st.integers(0, 1_000_000))
    def run(case, pick):
        if existing and case.path_parameters and pick % 2:
            # Half the cases address rows that exist, so the view's real code runs.
            for name in case.path_parameters:
                case.path_parameters[name] = existing[pick % len(existing)]
        tame_case(key, case)
        changed = make_hostile(case, pick) + "\n" if mode == "hostile" else ""
        result.cases += 1
        try:
            response = case.call(base_url=world.base_url, session=http, headers=headers,
                                 timeout=timeout)
        except requests.RequestException as error:
            record(f"transport: {type(error).__name__}",
                   f"{error}\n{case.as_curl_command(headers)}")
            return
        result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=check_list, headers=headers,
                                   transport_kwargs={"base_url": world.base_url,
                                                     "headers": headers})
        except FailureGroup as group:
            bugs = [known_bug(key, failure, response) for failure in group.exceptions]
            if all(bugs):
                for bug in set(bugs):
                    result.known[bug] = result.known.get(bug, 0) + 1
                return
            new = [f for f, bug in zip(group.exceptions, bugs) if not bug]
            titles = sorted({f"{type(f).__name__}: {f.title}" for f in new})
            record("; ".join(titles), changed + str(group))

    started = time.perf_counter()
    if seed is not None:
        random.seed(seed)
    try:
        run()
    except Unsatisfiable:
        result.unsatisfiable = True
    result.seconds = time.perf_counter() - started
    return result


# --- tests --------------------------------------------------------------------------------------

def test_every_operation_answers_by_its_schema(asgi_server):
    """Every operation, valid (positive) then schema-breaking (negative) requests: no 5xx, only
    documented status codes, content types and bodies (but for the known bugs above)."""
    world = build_world(asgi_server.url)
    schema = load_schema(asgi_server.url)
    in_schema = {f"{op.method.upper()} {op.path}"
                 for op in (result.ok() for result in schema.get_all_operations())}
    assert in_schema == set(OPERATIONS), "a new operation needs its credentials in OPERATIONS"

    failures, cases, reached = [], 0, {}
    for key in OPERATIONS:
        for mode in MODES:
            result = fuzz_operation(schema, world, key, mode, EXAMPLES, seed=0)
            assert result.cases > 0 or result.unsatisfiable, (key, mode)
            cases += result.cases
            failures += [f"{key} [{mode}] {title}\n{repro}" for title, repro in result.failures]
            if mode == "positive":
                reached[key] = set(result.statuses)
    assert not failures, f"{len(failures)} failure(s) in {cases} cases:\n\n" + "\n\n".join(
        failures)
    # The credentials work: every operation answered something else than 401/403 to valid
    # requests (the fuzzer reached the view's real code).
    refused = {key: codes for key, codes in reached.items() if not codes - {401, 403}}
    refused.pop("POST /tracking/{project_id}", None)  # its token is a random body field
    assert not refused, refused


# --- what the fuzzer found: fixed ones stay fixed, known ones are still there -------------------

def test_utc_offset_postgresql_cannot_store_is_a_400_not_a_500(asgi_server):
    """Found by the fuzzer: ?since=...+20:23 parsed in Python and PostgreSQL refused it (a
    DataError, 500). plumbing.errors answers 400 in the error shape."""
    world = build_world(asgi_server.url)
    response = requests.get(f"{asgi_server.url}/api/traces/",
                            params={"since": "2024-01-01T00:00:00+20:23"},
                            headers=world.headers("session"), timeout=10)
    assert response.status_code in (200, 400)  # SQLite stores any offset: 200 there
    if response.status_code == 400:
        body = response.json()
        assert body["code"] == "invalid" and "time zone displacement" in body["detail"]
        assert "SELECT" not in body["detail"]


def _validate(server, path, method, **parts):
    world = build_world(server.url)
    operation = load_schema(server.url)[path][method]
    headers = world.headers("session")
    operation.Case(**parts).call_and_validate(base_url=server.url, headers=headers,
                                              checks=checks())


def test_open_trace_times_are_null_as_documented(asgi_server):
    _validate(asgi_server, "/api/trace/{id}/", "GET", path_parameters={"id": 9002})


def test_waiting_test_timestamps_are_null_as_documented(asgi_server):
    from tm_api.models import Test

    world = build_world(asgi_server.url)
    waiting = Test.objects.get(file_name="t2.py").pk
    operation = load_schema(asgi_server.url)["/tm_api/test/{id}"]["GET"]
    operation.Case(path_parameters={"id": waiting}).call_and_validate(
        base_url=asgi_server.url, headers=world.headers("session"), checks=checks())


def test_page_past_the_end_is_a_documented_404(asgi_server):
    """Found by the fuzzer: ?page=43 of a short list answered 404, the schema listed only 200.
    plumbing.schema.AutoSchema documents it (in the error shape) for paginated lists."""
    _validate(asgi_server, "/tm_api/machines/", "GET", query={"page": 43})


def test_unknown_project_and_bad_filter_are_documented(asgi_server):
    """The project's request list: 404 for an unknown project, 400 for a filter that does not
    parse; both in the schema now (path parameter / query parameters)."""
    world = build_world(asgi_server.url)
    operation = load_schema(asgi_server.url)[
        "/api/tracking/projects/{project_id}/requests/"]["GET"]
    project = world.known["/api/tracking/projects/"][0]
    headers = world.headers("session")
    for parts, status in (
        ({"path_parameters": {"project_id": "00000000-0000-4000-8000-000000000000"}}, 404),
        ({"path_parameters": {"project_id": project}, "query": {"since": "x"}}, 400),
    ):
        case = operation.Case(**parts)
        response = case.call(base_url=asgi_server.url, headers=headers)
        assert response.status_code == status, response.text
        case.validate_response(response, checks=checks(), headers=headers)


BOUNDARY = "c637e12e2b1a998d80d1b087531af51c"


@pytest.mark.parametrize("path, body", [
    # Found by the bench: Twisted (under daphne) parsed form bodies itself and answered this
    # one with a bare "HTTP/1.1 400 Bad Request", no body, no Content-Type.
    ("/tracking/%C2%BA", f"--{BOUNDARY}--\r\n"),
    ("/api/tracking/ingest/", f"--{BOUNDARY}--\r\n"),
    # Malformed for Django's parser too (no closing boundary): DRF's error, in our shape.
    (f"/tracking/{'0' * 8}-0000-4000-8000-{'0' * 12}",
     f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx"),
])
def test_malformed_multipart_is_answered_in_the_api_error_shape(asgi_server, path, body):
    """A body Twisted cannot parse reaches Django (plumbing/library_internals/
    daphne_requests.py), which answers in the API's error shape: a real request to a real
    daphne."""
    response = requests.post(
        f"{asgi_server.url}{path}", data=body.encode(), timeout=10,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert response.headers.get("Content-Type") == "application/json", (
        response.status_code, response.headers, response.content)
    assert 400 <= response.status_code < 500
    assert {"detail", "code"} <= set(response.json())
