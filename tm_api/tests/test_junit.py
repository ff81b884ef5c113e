"""POST /tm_api/junit/: JUnit XML reports of real tools (pytest's --junitxml, a Surefire report)
imported as runs; malformed, hostile and oversize bodies refused (docs/tm.md, "JUnit XML")."""

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from tm_api import junit
from tm_api.auth import issue_token
from tm_api.models import Machine, Run, Test

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

FIXTURES = Path(__file__).parent / "fixtures"

# Every outcome, captured output, a retry (pytest-rerunfailures) and a property.
SUITE = (FIXTURES / "pytest_suite.py").read_text()


def post(client, body, query="?machine=ci-linux", content_type="application/xml", **headers):
    return client.post(f"/tm_api/junit/{query}", body, content_type=content_type, **headers)


@pytest.fixture
def anonymous(settings):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = True


@pytest.fixture(scope="module")
def pytest_report(tmp_path_factory):
    """A real pytest session's --junitxml report."""
    directory = tmp_path_factory.mktemp("suite")
    (directory / "test_suite.py").write_text(SUITE)
    report = directory / "report.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:cacheprovider",
         "-p", "no:randomly", "-o", "junit_logging=all", f"--junitxml={report}", "-q",
         "test_suite.py"], cwd=directory, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout  # it has failures
    return report.read_bytes()


def by_name(run):
    return {t.file_name: t for t in Test.objects.filter(master_scenario__run=run)
            .select_related("result", "scenario")}


def test_a_pytest_junitxml_report_becomes_a_run(client, anonymous, pytest_report):
    response = post(client, pytest_report,
                    "?machine=ci-linux&commit=abc123&branch=main&build_url=https://ci/1")
    assert response.status_code == 201, response.content
    body = response.json()
    run = Run.objects.get(pk=body["run"])
    assert {k: body[k] for k in ("tests", "passed", "failed", "error", "skipped", "xfailed",
                                 "retried", "refused")} == {
        "tests": 9, "passed": 5, "failed": 1, "error": 1, "skipped": 1, "xfailed": 1,
        "retried": 1, "refused": 0}
    assert (run.machine.machine_name, run.commit, run.branch, run.build_url) == (
        "ci-linux", "abc123", "main", "https://ci/1")
    tests = by_name(run)
    # Identity: classname + name, as pytest writes them.
    assert (tests["test_broken"].file_path, tests["test_broken"].file_name) == (
        "test_suite", "test_broken")
    assert tests["test_param[1]"].file_path == "test_suite.TestGroup"
    assert {name: (t.status, t.result.outcome) for name, t in tests.items()} == {
        "test_ok": ("passed", "passed"), "test_broken": ("failed", "failed"),
        "test_setup_error": ("error", "error"), "test_skipped": ("warning", "skipped"),
        "test_known_bug": ("passed", "xfailed"), "test_param[1]": ("passed", "passed"),
        "test_param[2]": ("passed", "passed"), "test_fixed_meanwhile": ("passed", "passed"),
        "test_flaky": ("passed", "passed")}
    broken = tests["test_broken"].result
    assert "wrong user returned" in broken.message
    assert "assert 'ann' == 'bob'" in broken.traceback
    assert "hello from stdout" in broken.stdout and "to stderr" in broken.stderr
    assert "db fixture exploded" in tests["test_setup_error"].result.message
    assert tests["test_skipped"].result.message == "later"
    assert "n = 1" in tests["test_param[1]"].script  # record_property
    # pytest-rerunfailures makes pytest write the test once per attempt (the failed attempt as
    # a pass, which is what the file says): one test, two attempts.
    assert tests["test_flaky"].result.attempts == ["passed", "passed"]
    master = run.master_scenario
    assert master.status == "failed" and master.tests_count == 9
    assert master.tests_statistics["waiting"] == master.tests_statistics["running"] == 0
    assert master.timestamp_start is not None and master.timestamp_stop is not None


def test_a_surefire_report_with_reruns_and_flakes(client, anonymous):
    xml = (FIXTURES / "TEST-com.acme.shop.CartServiceTest.xml").read_bytes()
    response = post(client, xml, "?machine=maven")
    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in ("tests", "passed", "failed", "error", "skipped", "retried")} \
        == {"tests": 7, "passed": 3, "failed": 2, "error": 1, "skipped": 1, "retried": 2}
    run = Run.objects.get(pk=body["run"])
    [scenario] = run.master_scenario.scenarios.all()
    assert scenario.file_name == "com.acme.shop.CartServiceTest"
    assert "java.version = 17.0.9" in scenario.script and "Suite started" in scenario.script
    tests = by_name(run)
    assert tests["addsItemToEmptyCart"].file_path == "com.acme.shop.CartServiceTest"
    removes = tests["removesLastItem"].result
    assert removes.attempts == ["failed", "failed", "failed"]
    assert removes.message == ("org.opentest4j.AssertionFailedError: expected: <0> but was: <1>")
    assert "CartServiceTest.java:57" in removes.traceback and "cart 42" in removes.stdout
    coupon = tests["appliesCoupon"]
    assert coupon.status == "passed" and coupon.result.attempts == ["failed", "passed"]
    assert "Connection refused" in coupon.result.message
    assert "redis not ready" in coupon.result.stdout and "illegal reflective" in coupon.result.stderr
    npe = tests["rejectsNegativeQuantity"].result
    assert npe.outcome == "error" and npe.message.startswith("java.lang.NullPointerException")
    assert tests["mergesGuestCart"].status == "warning"
    assert tests["checksOutWithExpiredCard"].result.message == (
        "java.util.concurrent.TimeoutException: Timeout: checkout did not finish within 1 s")
    # Durations are the report's.
    assert tests["appliesCoupon"].duration == 1.902


def test_nested_testsuites_and_gzip(client, anonymous):
    xml = b"""<?xml version="1.0"?>
<testsuites name="jest tests" tests="3">
  <testsuite name="outer" timestamp="2026-05-01T10:00:00" time="3">
    <testsuite name="inner">
      <testcase classname="cart adds" name="one item" time="1.5"/>
    </testsuite>
    <testcase classname="cart" name="empty" time="0.5"><skipped/></testcase>
  </testsuite>
  <testsuite name="other"><testcase name="alone" time="1"/></testsuite>
</testsuites>"""
    response = post(client, gzip.compress(xml), HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 201, response.content
    run = Run.objects.get(pk=response.json()["run"])
    assert run.master_scenario.file_name == "jest tests"
    assert [(s.file_path, s.file_name, s.tests_count)
            for s in run.master_scenario.scenarios.order_by("position")] == [
        ("", "outer", 1), ("outer", "inner", 1), ("", "other", 1)]
    assert run.timestamp.isoformat() == "2026-05-01T10:00:00+00:00"
    assert by_name(run)["alone"].file_path == "other"  # no classname: the suite's name


@pytest.mark.parametrize(("body", "says"), [
    (b"<testsuites>\n<testsuite name='a'>\n<testcase name='x'>\n</testsuite>", "line 4"),
    (b"", "empty"),
    (b"<testsuite name='a'><testcase name='x'/></testsuite><trailing/>", "line 1"),
    (b"<html><body>not a report</body></html>", "<html>"),
])
def test_malformed_xml_is_a_400_naming_the_line(client, anonymous, body, says):
    response = post(client, body)
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error" and says in response.json()["detail"]
    assert not Machine.objects.exists()


def test_an_xml_bomb_is_refused_unexpanded(client, anonymous):
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<testsuite name="&lol3;"><testcase name="x"/></testsuite>"""
    response = post(client, bomb)
    assert response.status_code == 400 and "entities" in response.json()["detail"]
    external = b"""<?xml version="1.0"?>
<!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]><testsuite name="&x;"/>"""
    assert post(client, external).status_code == 400
    assert not Run.objects.exists()


def test_oversize_bodies_are_refused(client, anonymous, monkeypatch):
    monkeypatch.setattr(junit, "MAX_BYTES", 10_000)
    # A gzip bomb: a few kilobytes that inflate past the limit are refused, not inflated.
    bomb = gzip.compress(b"<testsuite>" + b" " * 10_000_000 + b"</testsuite>")
    assert len(bomb) < 20_000
    response = post(client, bomb, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413
    assert post(client, b"<testsuite>" + b" " * 20_000 + b"</testsuite>").status_code == 413
    monkeypatch.setattr(junit, "MAX_TESTCASES", 2)
    many = b"<testsuite>" + b"<testcase name='t'/>" * 3 + b"</testsuite>"
    assert post(client, many).status_code == 413
    assert not Run.objects.exists()


def test_machine_is_required_and_the_token_must_allow_it(client, settings):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = False
    xml = b"<testsuite name='s'><testcase name='t'/></testsuite>"
    assert post(client, xml).status_code == 401
    rack = Machine.objects.create(machine_name="rack-3")
    _, secret = issue_token("rack", rack)
    auth = {"HTTP_AUTHORIZATION": f"Token {secret}"}
    assert post(client, xml, "", **auth).status_code == 400
    assert post(client, xml, "?machine=other", **auth).status_code == 403
    assert post(client, xml, "?machine=rack-3", content_type="application/json",
                **auth).status_code == 415
    response = post(client, xml, "?machine=RACK-3", content_type="text/xml", **auth)
    assert response.status_code == 201 and response.json()["machine_name"] == "RACK-3"
    assert Run.objects.get().machine == rack


def test_a_retried_import_with_its_key_is_one_run(client, anonymous):
    xml = b"<testsuite name='s'><testcase name='t'/></testsuite>"
    first = post(client, xml, HTTP_IDEMPOTENCY_KEY="import-1")
    again = post(client, xml, HTTP_IDEMPOTENCY_KEY="import-1")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and Run.objects.count() == 1


def test_a_rerun_written_inline_keeps_its_output_out_of_the_trace(client, anonymous):
    # cargo-nextest's shape: the trace as the element's text, its output as children.
    xml = b"""<testsuites name="nextest-run"><testsuite name="basic">
  <testcase name="test_failure_assert" classname="nextest-tests::basic" time="0.004">
    <failure type="test failure">thread 'x' panicked at tests/basic.rs:19:5</failure>
    <rerunFailure type="test failure">thread 'x' panicked again at tests/basic.rs:19:5
      <system-out>running 1 test</system-out>
    </rerunFailure>
  </testcase></testsuite></testsuites>"""
    response = post(client, xml)
    assert response.status_code == 201 and response.json()["retried"] == 1
    result = Test.objects.select_related("result").get().result
    assert result.attempts == ["failed", "failed"]
    assert result.traceback == "thread 'x' panicked at tests/basic.rs:19:5"
    assert result.message == "test failure: thread 'x' panicked at tests/basic.rs:19:5"


def test_a_testcase_written_once_per_attempt_is_one_test(client, anonymous):
    # gotestsum --rerun-fails: the failed attempt, then the passing one, as two testcases.
    xml = b"""<testsuites><testsuite name="example.com/shop" tests="3" failures="1">
  <testcase classname="example.com/shop" name="TestCheckout" time="0.50">
    <failure message="Failed" type="">cart_test.go:41: got 1, want 0</failure>
  </testcase>
  <testcase classname="example.com/shop" name="TestCart" time="0.10"/>
  <testcase classname="example.com/shop" name="TestCheckout" time="0.25"/>
</testsuite></testsuites>"""
    body = post(client, xml).json()
    assert (body["tests"], body["passed"], body["failed"], body["retried"]) == (2, 2, 0, 1)
    run = Run.objects.get(pk=body["run"])
    checkout = by_name(run)["TestCheckout"]
    assert checkout.status == "passed" and checkout.result.attempts == ["failed", "passed"]
    assert checkout.result.traceback == "cart_test.go:41: got 1, want 0"
    assert checkout.duration == 0.85 and run.master_scenario.tests_count == 2


def test_a_testcases_trace_id_property_is_its_trace(client, anonymous):
    """What pytest's --junitxml writes of the pytest plugin's user property `trace_id` (and any
    framework can record): the test links to that trace's requests and spans."""
    xml = b"""<?xml version="1.0"?>
<testsuite name="shop" timestamp="2026-05-01T10:00:00">
  <testcase classname="shop" name="buys" time="0.1">
    <properties><property name="trace_id" value="4BF92F3577B34DA6A3CE929D0E0E4736"/></properties>
  </testcase>
  <testcase classname="shop" name="no trace" time="0.1">
    <properties><property name="trace_id" value="not-a-trace"/></properties>
  </testcase>
</testsuite>"""
    response = post(client, xml)
    assert response.status_code == 201, response.content
    tests = by_name(Run.objects.get(pk=response.json()["run"]))
    assert tests["buys"].result.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert tests["no trace"].result.trace_id is None
