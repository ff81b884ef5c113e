"""Wire shapes of the test-machine API: what machines post and what the read API answers."""

from zoneinfo import ZoneInfo

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from plumbing.rest_fields import CharField
from tm_api import outcomes as O
from tm_api import status as S


@extend_schema_field({"type": "string", "example": "2018-12-30 13:01:57.461401"})
class ClientTimestampField(serializers.Field):
    """Machines' local time without zone ("2018-12-30 13:01:57.461401"), read in
    TM_CLIENT_TIME_ZONE (UTC by default); ISO 8601 with a zone keeps its zone. Answers ISO."""

    default_error_messages = {"invalid": "{message}"}

    def to_internal_value(self, data):
        try:
            return S.parse_client_timestamp(data, ZoneInfo(settings.TM_CLIENT_TIME_ZONE))
        except ValueError as error:
            self.fail("invalid", message=str(error))

    def to_representation(self, value):
        return S.iso(value)


class TestInput(serializers.Serializer):
    file_path = CharField(max_length=1024, allow_blank=True)
    file_name = CharField(max_length=256)
    script = CharField(allow_blank=True, allow_null=True, required=False,
                       trim_whitespace=False, default="")


class ScenarioInput(TestInput):
    tests = TestInput(many=True, required=False, allow_null=True, allow_empty=True)


class MasterScenarioInput(TestInput):
    scenarios = ScenarioInput(many=True, required=False, allow_null=True, allow_empty=True)


class CiFields(serializers.Serializer):
    """Where a run's code came from, as CI says it; all optional."""

    commit = CharField(max_length=100, required=False, allow_blank=True)
    branch = CharField(max_length=255, required=False, allow_blank=True)
    build_url = CharField(max_length=2048, required=False, allow_blank=True)


class DryRunInput(CiFields):
    machine_name = CharField(max_length=256)
    timestamp = ClientTimestampField()
    master_scenario = MasterScenarioInput()


def _tree_reply(tree: dict, children: str | None, grandchildren: str | None) -> dict:
    reply = {
        "file_path": tree["file_path"],
        "file_name": tree["file_name"],
        "script": tree.get("script") or "",
    }
    if children:
        reply[children] = [
            _tree_reply(child, grandchildren, None) for child in tree.get(children) or []
        ]
    return reply


def dry_run_reply(data: dict) -> dict:
    """The test-machine API's 201 body: the tree without machine_name, the timestamp in ISO 8601 and
    null lists as empty lists."""
    return {
        "timestamp": S.iso(data["timestamp"]),
        "master_scenario": _tree_reply(data["master_scenario"], "scenarios", "tests"),
    }


class DryRunReply(serializers.Serializer):
    """For the schema: the echoed tree."""

    timestamp = serializers.DateTimeField()
    master_scenario = MasterScenarioInput()


class TestStartInput(serializers.Serializer):
    machine_name = CharField(max_length=256)
    file_path = CharField(max_length=1024, allow_blank=True)
    file_name = CharField(max_length=256)
    timestamp_start = ClientTimestampField(required=False, allow_null=True)


class BoundedTextField(CharField):
    """A failure's text: kept whole up to outcomes.MAX_DETAIL characters, else its head and tail
    with the cut marked (a report is never refused for a long traceback)."""

    def __init__(self, **kwargs):
        super().__init__(required=False, allow_blank=True, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        return O.bounded(super().to_internal_value(data))


# A W3C trace id: 32 hex digits, not all zeros.
TRACE_ID_PATTERN = r"^(?!0{32}$)[0-9a-fA-F]{32}$"


class TestStopInput(serializers.Serializer):
    machine_name = CharField(max_length=256)
    file_path = CharField(max_length=1024, allow_blank=True)
    file_name = CharField(max_length=256)
    status = CharField(
        required=False,
        help_text="one of: " + ", ".join(S.STOP_STATUSES) + "; may be left out when `outcome` "
                  "is given (then: " + ", ".join(f"{o} -> {s}" for o, s in
                                                 O.OUTCOME_STATUS.items()) + ")"
    )
    timestamp_stop = ClientTimestampField(required=False, allow_null=True)
    # Optional, what a test tool says beyond the status (stored beside the test, shown on the
    # run page); machines that send none are answered as before.
    outcome = serializers.ChoiceField(choices=O.OUTCOMES, required=False)
    attempts = serializers.ListField(
        child=serializers.ChoiceField(choices=O.OUTCOMES), required=False,
        max_length=O.MAX_ATTEMPTS,
        help_text="the outcome of each attempt when the test was retried, the last its own")
    message = BoundedTextField(help_text="a failure's message (at most 65,536 characters, "
                                         "longer ones are cut in the middle, marked)")
    traceback = BoundedTextField(help_text="a failure's traceback (bounded likewise)")
    stdout = BoundedTextField(help_text="captured standard output (bounded likewise)")
    stderr = BoundedTextField(help_text="captured standard error (bounded likewise)")
    log = BoundedTextField(help_text="captured log records (bounded likewise)")
    trace_id = serializers.RegexField(
        TRACE_ID_PATTERN, required=False, allow_null=True,
        help_text="the W3C trace id (32 hex digits) the test ran in: traces and tracked "
                  "requests carrying it are listed with the test (the pytest plugin sends it)")

    def validate_trace_id(self, value):
        return value.lower() if value else None

    def validate_status(self, value):
        try:
            return S.check_stop_status(value)
        except S.InvalidStatus as error:
            raise serializers.ValidationError(str(error)) from None

    def validate(self, data):
        if "status" not in data:
            if "outcome" not in data:
                raise serializers.ValidationError(
                    {"status": ["This field is required (or give an `outcome`)."]})
            data["status"] = O.OUTCOME_STATUS[data["outcome"]]
        return data


# --- read API ----------------------------------------------------------------------------------

class TimesSerializer(serializers.Serializer):
    """When a test, master scenario or run started and stopped."""

    timestamp_start = serializers.DateTimeField(allow_null=True, help_text="null until started")
    timestamp_stop = serializers.DateTimeField(allow_null=True, help_text="null until stopped")
    duration = serializers.FloatField(allow_null=True, help_text="seconds")


class ScriptSerializer(TimesSerializer):
    pk = serializers.IntegerField(read_only=True)
    file_name = serializers.CharField()
    file_path = serializers.CharField()
    script = serializers.CharField()
    status = serializers.CharField()


class TraceLinkSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["trace", "requests"],
                                   help_text="trace: the trace sent here (OTLP, Zipkin); "
                                             "requests: a tracked request served in it")
    label = serializers.CharField()
    url = serializers.URLField()


class TestSerializer(ScriptSerializer):
    trace_id = serializers.CharField(allow_null=True, help_text="the W3C trace id the test "
                                     "ran in, when its stop said it (the pytest plugin does)")
    links = TraceLinkSerializer(many=True, help_text="the trace and the tracked requests "
                                "carrying the test's trace id (at most 10 requests)")


class StatisticsField(serializers.DictField):
    child = serializers.IntegerField()


class RollUpSerializer(serializers.Serializer):
    """A run's, master scenario's or scenario's roll-up of its tests (tm_api.status)."""

    status = serializers.CharField()
    tests_count = serializers.IntegerField()
    tests_statistics = StatisticsField()


class VersionField(serializers.IntegerField):
    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "the run's version: its last report's server time in "
                          "microseconds; live frames carry it too, and a page ignores news older "
                          "than it shows")
        super().__init__(**kwargs)


class ProgressSerializer(serializers.Serializer):
    """How far a run is and the time it has left (tm_api.progress), as of its latest report."""

    planned = serializers.IntegerField(help_text="tests the dry run listed")
    done = serializers.IntegerField(help_text="tests no longer waiting or running")
    percent = serializers.IntegerField(help_text="done of planned, rounded down (0-100)")
    ongoing = serializers.BooleanField(help_text="tests are still waiting or running")
    seconds_left = serializers.FloatField(
        allow_null=True, help_text="expected seconds to the run's end (0 once it ended); null "
        "while no test of it is timed: tests without history and none finished to stand in")
    running_left = serializers.FloatField(
        help_text="seconds of seconds_left that the test in progress accounts for: a page may "
                  "count down that much until the next report")
    parallelism = serializers.FloatField(
        help_text="tests observed running at once (pytest-xdist workers); 1 otherwise")


class MachineSerializer(serializers.Serializer):
    """A machine of /tm_api/machines/ (shape of bodies.machine_status)."""

    id = serializers.IntegerField()
    machine_name = serializers.CharField()
    status = serializers.CharField(help_text="the last run's status; not-available before one")
    last_run = serializers.IntegerField(required=False)
    timestamp = serializers.DateTimeField(required=False)
    tests_count = serializers.IntegerField(required=False)
    tests_statistics = StatisticsField(required=False)
    version = VersionField()


class RunFilters(serializers.Serializer):
    branch = CharField(max_length=255, required=False,
                       help_text="only runs of this branch (exactly)")
    commit = CharField(min_length=4, max_length=100, required=False,
                       help_text="only runs of commits starting with this")


class RunSerializer(RollUpSerializer, TimesSerializer):
    """A run of /tm_api/machine_dry_run_datas/<pk> (shape of bodies.run_summary)."""

    id = serializers.IntegerField()
    pk = serializers.IntegerField()
    timestamp = serializers.DateTimeField()
    master_scenario = serializers.IntegerField()
    file_name = serializers.CharField()
    scenarios_count = serializers.IntegerField()
    version = VersionField()
    commit = serializers.CharField(help_text="the commit tested, as CI said it ('' unknown)")
    branch = serializers.CharField(help_text="the branch tested ('' unknown)")
    build_url = serializers.CharField(help_text="the CI build's address ('' unknown)")
    progress = ProgressSerializer()


class LastTestSerializer(serializers.Serializer):
    pk = serializers.IntegerField()
    file_name = serializers.CharField()
    status = serializers.CharField()
    duration = serializers.FloatField(allow_null=True)


class LastScenarioSerializer(RollUpSerializer):
    pk = serializers.IntegerField()
    file_name = serializers.CharField()
    file_path = serializers.CharField()
    tests = LastTestSerializer(many=True)


class LastMasterScenarioSerializer(RollUpSerializer, TimesSerializer):
    pk = serializers.IntegerField()
    file_name = serializers.CharField()
    file_path = serializers.CharField()
    scenarios_count = serializers.IntegerField()
    scenarios = LastScenarioSerializer(many=True)
    dryrundata = serializers.IntegerField(help_text="run pk")
    timestamp = serializers.DateTimeField(help_text="the machine's time of the dry run")
    version = VersionField()
    progress = ProgressSerializer()


class MachineLastDataSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    machine_name = serializers.CharField()
    last_master_scenario = LastMasterScenarioSerializer(allow_null=True)

