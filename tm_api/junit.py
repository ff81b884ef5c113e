"""JUnit XML, the report format every test framework writes (pytest --junitxml, Maven Surefire
and Failsafe, Gradle, jest-junit, go-junit-report/gotestsum, PHPUnit), imported as one run.

    POST /tm_api/junit/?machine=NAME[&commit=&branch=&build_url=]
    Authorization: Token <machine token>, Content-Type: application/xml (or text/xml),
    Content-Encoding: gzip optional

The document becomes a run of that machine: the master scenario is the report (its root
<testsuites> name), a scenario per <testsuite> that holds testcases (nested suites flattened,
their names joined with " / "), a test per <testcase>. A test's identity is its classname (else
its file, else its suite's name) as file_path and its name as file_name: the same test has the
same identity in every run. The run is applied through services.apply_reports, as a machine's
batch would be (a dry run, then a start and a stop per test, in one transaction, set-based), so
roll-ups, live pages and notifications behave as for any run.

What a testcase says:
- no child: passed; <skipped>: skipped (pytest's xfail, `type="pytest.xfail"`: xfailed);
  <failure>: failed; <error>: error. The element's `message` (else its text's first line) is the
  message, its text the traceback.
- <flakyFailure>/<flakyError> (Surefire: failed, then passed on a rerun): attempts of the test,
  each failed or error, before its final outcome; <rerunFailure>/<rerunError> (failed on every
  rerun too) likewise. The last failed attempt's message and stack trace are kept when the test
  passed at last.
- The same testcase (classname and name) twice or more in one report (pytest-rerunfailures,
  gotestsum --rerun-fails, jest's retries write one per attempt): one test, each occurrence an
  attempt, the last one's outcome its own.
- <system-out>/<system-err> (the testcase's, else those of its flaky elements): stdout and
  stderr. <properties> (of a testcase or a suite, e.g. pytest's record_property) and a suite's
  own output: the script of the test or scenario (shown in its Script modal). A testcase's
  property `trace_id` (32 hex digits) is also the W3C trace id it ran in (docs/tm.md, "Tests and
  traces").
- Times: a suite's `timestamp` (its start, read in TM_CLIENT_TIME_ZONE when it has no zone, as
  machine timestamps are) and each testcase's `time` in seconds; tests of a suite start one after
  the other. Without a timestamp the run starts when the report arrives, minus its duration.

Refused, nothing stored: a body that is not well-formed XML (400 naming its line and column),
one that declares entities or reaches outside (an XML bomb: 400), a root that is neither
<testsuites> nor <testsuite> (400), more than MAX_BYTES once decompressed or more than
MAX_TESTCASES testcases (413).
"""

from datetime import timedelta
from xml.etree.ElementTree import Element, ParseError
from zoneinfo import ZoneInfo

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions, status

from plumbing import compressed, trace_links
from tm_api import outcomes as O
from tm_api import services
from tm_api import status as S

# A 10,000-test Surefire or pytest report is 2-10 MB; its gzip a tenth of that.
MAX_BYTES = 64 * 1024 * 1024
MAX_TESTCASES = 50_000
XML_TYPES = ("application/xml", "text/xml")
MAX_SCRIPT = O.MAX_DETAIL
_FAILED_ATTEMPTS = {"flakyFailure": O.FAILED, "flakyError": O.ERROR,
                    "rerunFailure": O.FAILED, "rerunError": O.ERROR}


class InvalidReport(exceptions.ParseError):
    """The body is not a JUnit XML report we read (400, code parse_error)."""


class TooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


# --- the body ----------------------------------------------------------------------------------

def decompressed(body: bytes, encoding: str) -> bytes:
    """The XML of a body sent as is or gzipped (Content-Encoding: gzip, or gzip's magic bytes),
    never more than MAX_BYTES of it: a small gzip that inflates to gigabytes is refused after
    MAX_BYTES, not read."""
    gzipped = body[:2] == b"\x1f\x8b" or encoding.strip().lower() in ("gzip", "x-gzip")
    try:
        return compressed.inflated(body, gzipped, MAX_BYTES)
    except compressed.NotGzip as error:
        raise InvalidReport(f"The body is not valid gzip: {error}.") from None
    except compressed.TooLarge:
        raise TooLarge(f"The report is larger than {MAX_BYTES:,} bytes"
                       + (" once decompressed." if gzipped else ".")) from None


def parse(xml: bytes) -> Element:
    """The document's root, parsed by defusedxml: entity declarations (billion laughs,
    quadratic blowup) and external references are refused, not expanded."""
    try:
        root = SafeET.fromstring(xml, forbid_dtd=False, forbid_entities=True,
                                 forbid_external=True)
    except ParseError as error:
        line, column = getattr(error, "position", (0, 0))
        reason = str(error).split(":")[0]
        raise InvalidReport(f"Malformed XML at line {line}, column {column + 1}: {reason}.",
                            ) from None
    except DefusedXmlException as error:
        raise InvalidReport(f"Refused: the document declares entities or refers outside itself "
                            f"({type(error).__name__}); JUnit reports need neither.") from None
    if _tag(root) not in ("testsuites", "testsuite"):
        raise InvalidReport(f"The root element is <{_tag(root)}>; a JUnit report's is "
                            f"<testsuites> or <testsuite>.")
    return root


def _tag(element) -> str:
    tag = element.tag if isinstance(element.tag, str) else ""
    return tag.rsplit("}", 1)[-1]  # a namespace, if a writer added one


def _children(element, *tags):
    return [child for child in element if _tag(child) in tags]


def _text(element) -> str:
    return "".join(element.itertext()) if element is not None else ""


def _seconds(value) -> float:
    """A `time` attribute: "0.25", "1,234.5" (some writers group thousands); else 0."""
    try:
        seconds = float((value or "0").replace(",", ""))
    except ValueError:
        return 0.0
    return seconds if 0 <= seconds < 10 ** 7 else 0.0


def _timestamp(value, zone):
    if not value:
        return None
    try:
        return S.parse_client_timestamp(value, zone)
    except ValueError:
        return None


# --- the report as a run -----------------------------------------------------------------------

def _properties(element) -> str:
    lines = [f"{prop.get('name', '')} = {prop.get('value', _text(prop))}"
             for properties in _children(element, "properties")
             for prop in _children(properties, "property")]
    return ("properties:\n  " + "\n  ".join(lines) + "\n") if lines else ""


def _suites(element, names=()):
    """(names of the suite and its parents, the suite) of every suite holding testcases."""
    for suite in _children(element, "testsuite", "testsuites"):
        path = (*names, suite.get("name") or "")
        if _children(suite, "testcase"):
            yield path, suite
        yield from _suites(suite, path)


def _failure(element) -> tuple[str, str]:
    """(message, traceback) of a failure, an error, a skip or a flaky attempt."""
    # Surefire nests the trace in <stackTrace>; others (nextest, pytest) write it as the
    # element's own text, possibly followed by <system-out> children, which are not the trace.
    traces = _children(element, "stackTrace")
    text = _text(traces[0]) if traces else (element.text or "")
    message = element.get("message") or ""
    if not message:
        message = next((line.strip() for line in text.splitlines() if line.strip()), "")
    kind = element.get("type") or ""
    if kind and kind not in message and _tag(element) != "skipped":
        message = f"{kind}: {message}" if message else kind
    return message, text


def testcase_result(case) -> tuple[str, dict]:
    """(status, TestResult fields) of a <testcase>."""
    failure = (_children(case, "failure") or [None])[0]
    error = (_children(case, "error") or [None])[0]
    skipped = (_children(case, "skipped") or [None])[0]
    if failure is not None:
        outcome, detail = O.FAILED, failure
    elif error is not None:
        outcome, detail = O.ERROR, error
    elif skipped is not None:
        outcome = O.XFAILED if (skipped.get("type") or "").endswith("xfail") else O.SKIPPED
        detail = skipped
    else:
        outcome, detail = O.PASSED, None
    result = {"outcome": outcome}
    if detail is not None:
        message, traceback = _failure(detail)
        result["message"] = O.bounded(message)
        if outcome != O.SKIPPED:
            result["traceback"] = O.bounded(traceback)
    flaky = [child for child in case if _tag(child) in _FAILED_ATTEMPTS]
    if flaky:
        result["attempts"] = O.attempts_of([_FAILED_ATTEMPTS[_tag(c)] for c in flaky] + [outcome])
        if detail is None:
            message, traceback = _failure(flaky[-1])
            result["message"], result["traceback"] = O.bounded(message), O.bounded(traceback)
    else:
        result["attempts"] = [outcome]
    for stream in ("out", "err"):
        texts = [_text(e) for e in _children(case, f"system-{stream}")]
        if not any(texts) and flaky:
            texts = [_text(e) for e in _children(flaky[-1], f"system-{stream}")]
        if any(texts):
            result[f"std{stream}"] = O.bounded("\n".join(t for t in texts if t))
    trace_id = _trace_id(case)
    if trace_id:
        result["trace_id"] = trace_id
    return O.OUTCOME_STATUS[outcome], result


def _trace_id(case) -> str | None:
    """The W3C trace id the testcase ran in: its property `trace_id` (the pytest plugin's user
    property, which --junitxml writes; any framework can record one), if it is one."""
    for properties in _children(case, "properties"):
        for prop in _children(properties, "property"):
            value = (prop.get("value") or "").strip().lower()
            if prop.get("name") == "trace_id" and trace_links.is_trace_id(value):
                return value
    return None


def _again(earlier: dict, later: dict) -> dict:
    """A testcase written again in one report (pytest-rerunfailures, gotestsum --rerun-fails,
    jest's retries write one per attempt): one test, its attempts in order, the last one's
    outcome; a test that passed at last keeps the earlier failure's details."""
    result = {**later, "attempts": O.attempts_of(earlier["attempts"] + later["attempts"])}
    if later["outcome"] not in (O.FAILED, O.ERROR):
        for field in O.DETAIL_FIELDS:
            if earlier.get(field) and not result.get(field):
                result[field] = earlier[field]
    return result


def reports_of(root, ci: dict, now=None, report_name="junit") -> tuple[list, dict]:
    """The reports (as services.apply_reports takes them) that make the document one run, and
    the counts of its outcomes."""
    zone = ZoneInfo(settings.TM_CLIENT_TIME_ZONE)
    now = now or timezone.now()
    suites = list(_suites(root)) if _tag(root) == "testsuites" else [((root.get("name") or "",),
                                                                        root)]
    if _tag(root) == "testsuite":
        suites += list(_suites(root, (root.get("name") or "",)))
    count = sum(len(_children(suite, "testcase")) for _, suite in suites)
    if count > MAX_TESTCASES:
        raise TooLarge(f"The report has {count:,} testcases; at most {MAX_TESTCASES:,}.")
    total = sum(_seconds(case.get("time")) for _, suite in suites
                for case in _children(suite, "testcase"))
    starts = [t for _, suite in suites if (t := _timestamp(suite.get("timestamp"), zone))]
    run_start = min(starts) if starts else now - timedelta(seconds=total)

    scenarios, stops = [], {}  # (path, name) -> [start, stop, status, result]
    clock = run_start
    for names, suite in suites:
        suite_start = _timestamp(suite.get("timestamp"), zone) or clock
        moment = suite_start
        tests = []
        for case in _children(suite, "testcase"):
            path = (case.get("classname") or case.get("file") or names[-1] or "")[:1024]
            name = (case.get("name") or "(unnamed)")[:256]
            status, result = testcase_result(case)
            script = _properties(case)
            if case.get("file"):
                script = f"file: {case.get('file')}" + (f":{case.get('line')}" if case.get(
                    "line") else "") + "\n" + script
            took = timedelta(seconds=_seconds(case.get("time")))
            earlier = stops.get((path, name))
            if earlier is None:
                tests.append({"file_path": path, "file_name": name, "script": script})
                stops[(path, name)] = [moment, moment + took, status, result]
            else:
                earlier[1:] = [moment + took, status, _again(earlier[3], result)]
            moment += took
        clock = max(clock, moment)
        output = "".join(
            f"{_tag(e)}:\n{_text(e)}\n" for e in _children(suite, "system-out", "system-err")
            if _text(e).strip())
        scenarios.append({
            "file_path": " / ".join(n for n in names[:-1] if n)[:1024],
            "file_name": (names[-1] or "(unnamed suite)")[:256],
            "script": O.bounded(_properties(suite) + output, MAX_SCRIPT), "tests": tests})

    master = {"file_path": "", "file_name": (root.get("name") or report_name)[:256],
              "script": O.bounded(_properties(root), MAX_SCRIPT), "scenarios": scenarios}
    reports = [(services.DRY_RUN, {"timestamp": run_start, "master_scenario": master, **ci})]
    counts = {"tests": len(stops), **{outcome: 0 for outcome in O.OUTCOMES}, "retried": 0}
    for (path, name), (start, stop, status_, result) in stops.items():
        reports.append((services.TEST_START, {"file_path": path, "file_name": name,
                                              "timestamp_start": start}))
        reports.append((services.TEST_STOP, {"file_path": path, "file_name": name,
                                             "status": status_, "timestamp_stop": stop,
                                             **result}))
        counts[result["outcome"]] += 1
        counts["retried"] += len(result["attempts"]) > 1
    return reports, counts


def import_report(machine_name: str, root, ci: dict) -> dict:
    """The document applied as one run of `machine_name`: {"run": pk, counts...}."""
    reports, counts = reports_of(root, ci)
    outcomes = services.apply_reports(machine_name, reports)
    refused = [outcome for outcome in outcomes if outcome["status"] >= 400]
    return {"run": outcomes[0]["run"], "machine_name": machine_name, **counts,
            "refused": len(refused)}
