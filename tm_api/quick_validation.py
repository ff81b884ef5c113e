"""Machine reports of the usual shape validated in plain Python, without DRF's field machinery.

A pytest session's reports are thousands of dry-run tests, starts and stops, nearly all of one
plain shape (strings where strings go, known statuses, ISO timestamps). DRF's serializers
validate each field through several layers of calls (empty-value checks, validators, nested
list serializers): 48 µs a start or stop, 27 ms a 2,000-test dry run, a fifth to a third of
the server's time for a batch of reports. `validated(input_class, data)` gives exactly what
`input_class().run_validation(data)` gives for those shapes, and None for anything else (a
number where text goes, a field in error, a value DRF would refuse or convert): DRF then
validates it as always, so every refusal is DRF's, word for word.

Written here rather than with a validation library (pydantic, msgspec): the rules to match are
DRF's own (whitespace trimmed, blank and NUL refused, text bounded before it is checked, a
status derived from an outcome), which such a library would need the same code around;
tm_api/tests/test_quick_validation.py checks the two agree, on generated reports.
"""

import re
from zoneinfo import ZoneInfo

from django.conf import settings
from rest_framework import serializers

from tm_api import outcomes as O
from tm_api import status as S
from tm_api.serializers import (
    TRACE_ID_PATTERN,
    DryRunInput,
    TestInput,
    TestStartInput,
    TestStopInput,
)

_MISSING = object()
# TestStopInput.trace_id's pattern, searched as DRF's RegexValidator does.
_TRACE_ID = re.compile(TRACE_ID_PATTERN)
_OUTCOMES = frozenset(O.OUTCOMES)
_STOP_STATUSES = frozenset(S.STOP_STATUSES)


class _Unusual(Exception):
    """Not of the plain shape: DRF decides."""


def validated(input_class, data) -> dict | None:
    """What input_class().run_validation(data) returns, or None where DRF must look (for one
    of the three machine reports; None for any other serializer)."""
    check = _CHECKS.get(input_class)
    if check is None or type(data) is not dict:
        return None
    try:
        return check(data)
    except _Unusual:
        return None


def _clean(value: str) -> str:
    """DRF's validators of every CharField: no NUL, no surrogate (UTF-8 refuses exactly
    those)."""
    if "\x00" in value:
        raise _Unusual
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Unusual from None
    return value


def _text_rules(input_class) -> dict:
    """{field name: (max_length, allow_blank)} of the serializer's trimmed CharFields: the
    limits are the serializers' own, not written again here."""
    return {name: (field.max_length, field.allow_blank)
            for name, field in input_class().fields.items()
            if isinstance(field, serializers.CharField) and field.trim_whitespace}


_START, _STOP, _DRY_RUN, _TEST = map(_text_rules, (TestStartInput, TestStopInput, DryRunInput,
                                                   TestInput))


def _text(data: dict, key: str, rules: dict):
    """A trimmed CharField of the serializer whose `rules` (_text_rules) are given; _MISSING
    when absent."""
    max_length, blank = rules[key]
    value = data.get(key, _MISSING)
    if value is _MISSING:
        return value
    if type(value) is not str:
        raise _Unusual
    value = value.strip()
    if not value:
        if blank:
            return ""
        raise _Unusual
    if max_length is not None and len(value) > max_length:
        raise _Unusual
    return _clean(value)


def _required(value):
    if value is _MISSING:
        raise _Unusual
    return value


def _timestamp(data: dict, key: str, required: bool = False):
    """A ClientTimestampField: None allowed unless required; _MISSING when absent."""
    value = data.get(key, _MISSING)
    if value is _MISSING or (value is None and not required):
        return value
    try:
        return S.parse_client_timestamp(value, ZoneInfo(settings.TM_CLIENT_TIME_ZONE))
    except ValueError:
        raise _Unusual from None


def _put(into: dict, key: str, value) -> None:
    if value is not _MISSING:
        into[key] = value


def _name_fields(data: dict, rules: dict) -> dict:
    return {key: _required(_text(data, key, rules))
            for key in ("machine_name", "file_path", "file_name")}


def _start(data: dict) -> dict:
    result = _name_fields(data, _START)
    _put(result, "timestamp_start", _timestamp(data, "timestamp_start"))
    return result


def _detail(value: str) -> str:
    """A BoundedTextField: bounded first, then checked (DRF validates the bounded text)."""
    if type(value) is not str:
        raise _Unusual
    return _clean(O.bounded(value)) if value else ""


def _stop(data: dict) -> dict:
    result = _name_fields(data, _STOP)
    status = _text(data, "status", _STOP)
    if status is not _MISSING and status not in _STOP_STATUSES:
        raise _Unusual
    _put(result, "status", status)
    _put(result, "timestamp_stop", _timestamp(data, "timestamp_stop"))
    outcome = data.get("outcome", _MISSING)
    if outcome is not _MISSING:
        if type(outcome) is not str or outcome not in _OUTCOMES:
            raise _Unusual
        result["outcome"] = outcome
    attempts = data.get("attempts", _MISSING)
    if attempts is not _MISSING:
        if (type(attempts) is not list or len(attempts) > O.MAX_ATTEMPTS
                or any(type(a) is not str or a not in _OUTCOMES for a in attempts)):
            raise _Unusual
        result["attempts"] = list(attempts)
    for key in O.DETAIL_FIELDS:
        value = data.get(key, _MISSING)
        if value is not _MISSING:
            result[key] = _detail(value)
    trace_id = data.get("trace_id", _MISSING)
    if trace_id is not _MISSING:
        if trace_id is not None:
            if type(trace_id) is not str:
                raise _Unusual
            trace_id = trace_id.strip()
            if not _TRACE_ID.search(trace_id):
                raise _Unusual
            trace_id = trace_id.lower()
        result["trace_id"] = trace_id
    if "status" not in result:
        if "outcome" not in result:
            raise _Unusual
        result["status"] = O.OUTCOME_STATUS[result["outcome"]]
    return result


def _script(data: dict):
    """TestInput.script: untrimmed, blank or null allowed, "" when absent."""
    value = data.get("script", "")
    if value is None or value == "":
        return value
    if type(value) is not str:
        raise _Unusual
    return _clean(value)


def _tree(data, children: str | None, grandchildren: str | None) -> dict:
    """A TestInput (and its `children`, each with their `grandchildren`)."""
    if type(data) is not dict:
        raise _Unusual
    result = {"file_path": _required(_text(data, "file_path", _TEST)),
              "file_name": _required(_text(data, "file_name", _TEST)),
              "script": _script(data)}
    if children is not None:
        items = data.get(children, _MISSING)
        if items is not _MISSING:
            if items is not None:
                if type(items) is not list:
                    raise _Unusual
                items = [_tree(item, grandchildren, None) for item in items]
            result[children] = items
    return result


def _dry_run(data: dict) -> dict:
    result = {}
    for key in ("commit", "branch", "build_url"):
        _put(result, key, _text(data, key, _DRY_RUN))
    result["machine_name"] = _required(_text(data, "machine_name", _DRY_RUN))
    result["timestamp"] = _required(_timestamp(data, "timestamp", required=True))
    result["master_scenario"] = _tree(_required(data.get("master_scenario", _MISSING)),
                                      "scenarios", "tests")
    return result


_CHECKS = {TestStartInput: _start, TestStopInput: _stop, DryRunInput: _dry_run}
