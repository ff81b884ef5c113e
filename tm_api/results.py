"""The read API of a run's tests and their results (people read; login unless DASHBOARDS_PUBLIC):

    GET /api/runs/<run>/tests/[?status=&outcome=&page=&page_size=]   the tests, in dry-run order
    GET /api/runs/<run>/tests/<test>/                                one, with its failure's details

A test's result is its status (the test-machine API's) and what its stop said beyond it
(TestResult: the tool's outcome, the attempts, the message; in the details the traceback and
the captured output). Lists leave the long texts out: a run of 10,000 tests with failures would
otherwise be megabytes a page.
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from plumbing.errors import ErrorSerializer
from tm_api import outcomes as O
from tm_api import status as S
from tm_api.models import MasterScenario, Test

TAGS = ["test machines: read"]
_LONG = ("script", "result__traceback", "result__stdout", "result__stderr", "result__log")


class RunTestFilters(serializers.Serializer):
    status = serializers.ChoiceField(choices=list(S.PRIORITY), required=False,
                                     help_text="only tests in this status")
    outcome = serializers.ChoiceField(choices=list(O.OUTCOMES), required=False,
                                      help_text="only tests whose stop said this outcome")


class ScenarioRef(serializers.Serializer):
    pk = serializers.IntegerField()
    file_name = serializers.CharField()
    file_path = serializers.CharField()


class RunTest(serializers.Serializer):
    """A test of a run and its result."""

    pk = serializers.IntegerField()
    position = serializers.IntegerField(help_text="0-based, in the dry run's order")
    file_path = serializers.CharField()
    file_name = serializers.CharField()
    scenario = ScenarioRef()
    status = serializers.ChoiceField(choices=list(S.PRIORITY))
    outcome = serializers.CharField(
        allow_null=True, help_text="the test tool's word (passed, failed, error, skipped, "
        "xfailed, xpassed); null when the stop said only a status")
    attempts = serializers.ListField(
        child=serializers.CharField(), help_text="the outcome of each attempt, the last the "
        "test's own; more than one: it was retried")
    timestamp_start = serializers.DateTimeField(allow_null=True)
    timestamp_stop = serializers.DateTimeField(allow_null=True)
    duration = serializers.FloatField(allow_null=True, help_text="seconds; null until it ended")
    expected_duration = serializers.FloatField(
        allow_null=True, help_text="seconds, from its recent durations when the run began "
        "(the run's time left is summed from these); null: never timed before")
    message = serializers.CharField(help_text="why it failed, one line ('' none)")


class RunTestDetail(RunTest):
    run = serializers.IntegerField()
    machine_name = serializers.CharField()
    traceback = serializers.CharField()
    stdout = serializers.CharField()
    stderr = serializers.CharField()
    log = serializers.CharField()


def test_body(test: Test, details: bool = False) -> dict:
    result = getattr(test, "result", None)
    body = {
        "pk": test.pk, "position": test.position, "file_path": test.file_path,
        "file_name": test.file_name,
        "scenario": {"pk": test.scenario.pk, "file_name": test.scenario.file_name,
                     "file_path": test.scenario.file_path},
        "status": test.status,
        "outcome": (result.outcome or None) if result else None,
        "attempts": result.attempts if result else [],
        "timestamp_start": S.iso(test.timestamp_start),
        "timestamp_stop": S.iso(test.timestamp_stop), "duration": test.duration,
        "expected_duration": None if test.expected_ms is None else test.expected_ms / 1000,
        "message": result.message if result else "",
    }
    if details:
        body.update(run=test.master_scenario.run_id, machine_name=test.machine.machine_name,
                    **{name: getattr(result, name) if result else ""
                       for name in ("traceback", "stdout", "stderr", "log")})
    return body


def _master(run) -> MasterScenario:
    master = MasterScenario.objects.filter(run_id=run).only("pk", "run_id").first()
    if master is None:
        raise exceptions.NotFound(f"No run {run}.", code="not_found")
    return master


def _not_found(description):
    return OpenApiResponse(ErrorSerializer, description=description)


@extend_schema(tags=TAGS, parameters=[RunTestFilters], responses={
    200: RunTest(many=True), 400: _not_found("an unknown status or outcome"),
    404: _not_found("no such run")},
    summary="A run's tests with their results, in dry-run order (messages, no tracebacks).")
class RunTestsView(generics.GenericAPIView):
    serializer_class = RunTest

    def get(self, request, run):
        filters = RunTestFilters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        tests = (Test.objects.filter(master_scenario=_master(run))
                 .select_related("scenario", "result").defer(*_LONG).order_by("position"))
        if "status" in filters.validated_data:
            tests = tests.filter(status=filters.validated_data["status"])
        if "outcome" in filters.validated_data:
            tests = tests.filter(result__outcome=filters.validated_data["outcome"])
        page = self.paginate_queryset(tests)
        return self.get_paginated_response([test_body(test) for test in page])


@extend_schema(tags=TAGS, responses={200: RunTestDetail,
                                     404: _not_found("no such run, or no such test in it")},
               summary="One test of a run: its result with the failure's traceback and output.")
class RunTestDetailView(APIView):
    def get(self, request, run, pk):
        test = (Test.objects.filter(pk=pk, master_scenario=_master(run))
                .select_related("scenario", "result", "machine", "master_scenario")
                .defer("script").first())
        if test is None:
            raise exceptions.NotFound(f"No test {pk} in run {run}.", code="not_found")
        return Response(test_body(test, details=True))
