"""tm_api.quick_validation gives what DRF's serializers give, or leaves the report to them.

Generated reports mix the plain shapes (which the quick path must take) with everything DRF
treats with care: whitespace to trim, blanks, NUL and surrogates, lengths at each limit,
numbers and nulls where text goes, timestamps with and without a zone or out of range, unknown
statuses and outcomes, too many attempts, texts past the detail limit with a NUL or surrogate
inside or outside the part kept, trace ids of every wrong form, absent and unknown fields.
"""

import copy
from datetime import datetime

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework import serializers

from tm_api import outcomes as O
from tm_api import serializers as inputs
from tm_api import status as S
from tm_api.quick_validation import validated

# Not by their own names: pytest would take the Test* classes for test classes.
DRY_RUN, START, STOP = inputs.DryRunInput, inputs.TestStartInput, inputs.TestStopInput

MISSING = object()
LONG = "a" * O.MAX_DETAIL

# Each field: (values DRF takes, values it refuses or treats with care).
TEXT = (st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
                max_size=12).filter(str.strip),
        st.one_of(st.text(max_size=12), st.sampled_from([
            "  padded  ", "", "   ", "\t\n", "with\x00nul", "lone \ud800 surrogate", "a" * 255,
            "a" * 256, "a" * 257, "a" * 1024, "a" * 1025, " " + "a" * 256 + " ", 0, 7, 1.5, True,
            None, [], {}, ["x"]])))
TIMESTAMP = (st.one_of(st.sampled_from(["2018-12-30 13:01:57.461401",
                                        "2026-12-07T10:00:00.123456+00:00",
                                        "2026-12-07T10:00:00Z", " 2026-12-07 10:00:00 ",
                                        "2026-12-07T12:00:00+02:00"]),
                       st.datetimes().map(str)),
             st.sampled_from([None, "0001-01-01 00:00:00", "9999-12-31 23:59:59", "yesterday",
                              "", "  ", 1_700_000_000, "2026-13-01 00:00:00"]))
STATUS = (st.sampled_from(S.STOP_STATUSES), st.one_of(st.sampled_from([
    " passed ", "", "PASSED", "running", "waiting", None, 1]), st.text(max_size=8)))
OUTCOME = (st.sampled_from(O.OUTCOMES), st.sampled_from(["", " passed", "PASSED", "rerun",
                                                           None, 3]))
ATTEMPTS = (st.lists(OUTCOME[0], max_size=4),
            st.one_of(st.lists(st.one_of(*OUTCOME), min_size=1, max_size=4),
                      st.sampled_from([["failed"] * O.MAX_ATTEMPTS,
                                       ["failed"] * (O.MAX_ATTEMPTS + 1), "passed", None,
                                       {"a": 1}])))
DETAIL = (st.one_of(TEXT[0], st.sampled_from([
    LONG, LONG + "b", LONG + "\x00" + LONG,  # the NUL falls in the part cut out
    LONG + "\ud800" + LONG, "", "trailing space  ", "\n\n"])),
    st.one_of(TEXT[1], st.sampled_from(["\x00" + LONG + "b", LONG[:100] + "\ud800" + LONG])))
TRACE_ID = (st.one_of(st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=32),
                      st.just(None)),
            st.sampled_from([" 0af7651916cd43dd8448eb211c80319c ", "0" * 32,
                             "0af7651916cd43dd8448eb211c80319", "", 12,
                             "0af7651916cd43dd8448eb211c80319c\n",
                             "zaf7651916cd43dd8448eb211c80319c"]))


def fields(**pairs):
    """Reports DRF takes, then up to three of their fields made odd or left out, and at times
    a field no serializer knows: a report is rarely refused for more than one reason, and most
    go the quick path's whole way."""
    @st.composite
    def report(draw):
        body = draw(st.fixed_dictionaries({key: valid for key, (valid, _) in pairs.items()}))
        for key in draw(st.lists(st.sampled_from(sorted(pairs)), max_size=3, unique=True)):
            body[key] = draw(st.one_of(st.just(MISSING), pairs[key][1]))
        if draw(st.booleans()):
            body["unknown_field"] = draw(st.one_of(*TEXT))
        return {key: value for key, value in body.items() if value is not MISSING}
    return report()


def plain(value):
    """Validated data compared exactly: a timestamp by its text (instant and zone)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), str(value.tzinfo))
    return value


def check_agrees(input_class, report):
    for zone in ("UTC", "America/Sao_Paulo"):  # timestamps without a zone are read in it
        with override_settings(TM_CLIENT_TIME_ZONE=zone):
            agrees(input_class, report)


def agrees(input_class, report):
    quick = validated(input_class, copy.deepcopy(report))
    try:
        drf = input_class().run_validation(copy.deepcopy(report))
    except serializers.ValidationError:
        assert quick is None, f"DRF refuses {report!r}, the quick path took it as {quick!r}"
        return
    if quick is not None:
        assert plain(quick) == plain(drf)


examples = hypothesis_settings(max_examples=400, deadline=None,
                               suppress_health_check=[HealthCheck.too_slow])


@examples
@given(fields(machine_name=TEXT, file_path=TEXT, file_name=TEXT, timestamp_start=TIMESTAMP))
def test_a_start_validates_as_drf_validates_it(report):
    check_agrees(START, report)


@examples
@given(fields(machine_name=TEXT, file_path=TEXT, file_name=TEXT, status=STATUS,
              timestamp_stop=TIMESTAMP, outcome=OUTCOME, attempts=ATTEMPTS, message=DETAIL,
              traceback=DETAIL, stdout=DETAIL, stderr=DETAIL, log=DETAIL, trace_id=TRACE_ID))
def test_a_stop_validates_as_drf_validates_it(report):
    check_agrees(STOP, report)


SCRIPT = (st.one_of(DETAIL[0], st.just(None)), DETAIL[1])


def trees(children: str | None = None, grandchildren: str | None = None):
    """A TestInput, with a list of `children` (each with its `grandchildren`)."""
    pairs = {"file_path": TEXT, "file_name": TEXT, "script": SCRIPT}
    if children is not None:
        items = st.lists(trees(grandchildren), max_size=3)
        pairs[children] = (st.one_of(items, st.just(None)), st.sampled_from([{}, "x", [None]]))
    return fields(**pairs)


@examples
@given(fields(machine_name=TEXT, timestamp=TIMESTAMP, commit=TEXT, branch=TEXT,
              build_url=(st.one_of(TEXT[0], st.just("")), TEXT[1]),
              master_scenario=(trees("scenarios", "tests"), st.sampled_from([None, [], "x"]))))
@example({"machine_name": "m", "timestamp": None, "master_scenario": {"file_name": "x",
                                                                     "file_path": ""}})
def test_a_dry_run_validates_as_drf_validates_it(report):
    check_agrees(DRY_RUN, report)


def test_the_reports_machines_send_take_the_quick_path_and_agree():
    """What the pytest plugin and the per-report clients send is the common case: if the quick
    path let these go to DRF, it would save nothing (and the tests above could pass
    regardless)."""
    source = "def test_login():\n    assert login('ann') == 'ok'\n"
    tree = {"file_path": "/work", "file_name": "project", "script": "pytest -q", "scenarios": [
        {"file_path": "tests", "file_name": "test_api.py", "script": "", "tests": [
            {"file_path": "tests/test_api.py", "file_name": f"test_{n}", "script": source}
            for n in range(3)]}]}
    reports = [
        (DRY_RUN, {"machine_name": "rack-3", "timestamp": "2026-12-07T10:00:00.000001+00:00",
                       "master_scenario": tree, "commit": "1a2b3c4", "branch": "main"}),
        (DRY_RUN, {"machine_name": "rack-3", "timestamp": "2018-12-30 13:01:57.461401",
                       "master_scenario": {"file_path": "", "file_name": "suite",
                                           "scenarios": None}}),
        (START, {"machine_name": "rack-3", "file_path": "tests/test_api.py",
                          "file_name": "test_login",
                          "timestamp_start": "2026-12-07T10:00:00.100000+00:00"}),
        (STOP, {"machine_name": "rack-3", "file_path": "tests/test_api.py",
                         "file_name": "test_login", "status": "passed", "outcome": "passed",
                         "timestamp_stop": "2026-12-07T10:00:00.350000+00:00",
                         "trace_id": "0af7651916cd43dd8448eb211c80319c"}),
        (STOP, {"machine_name": "rack-3", "file_path": "tests/test_api.py",
                         "file_name": "test_login", "outcome": "failed",
                         "attempts": ["failed", "failed"], "message": "assert 1 == 2",
                         "traceback": "Traceback...\n" + "x" * (O.MAX_DETAIL + 10),
                         "stdout": "printed\n", "stderr": "", "log": "INFO started"}),
    ]
    for input_class, report in reports:
        quick = validated(input_class, copy.deepcopy(report))
        assert quick is not None, report
        assert plain(quick) == plain(input_class().run_validation(copy.deepcopy(report)))
    stop = validated(STOP, reports[4][1])
    assert stop["status"] == "failed" and "characters cut" in stop["traceback"]


@pytest.mark.parametrize("input_class", [START, STOP, DRY_RUN])
def test_anything_but_a_json_object_is_left_to_drf(input_class):
    for data in ([], "x", None, 3):
        assert validated(input_class, data) is None
