"""The read API of tests across runs: a test's history, the flaky tests, two runs compared,
and the quarantine marks people set (docs/tm.md, "Tests across runs")."""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from plumbing.errors import ErrorSerializer
from tm_api import history
from tm_api import outcomes as O
from tm_api import status as S
from tm_api.models import Quarantine, Run, Test

TAGS = ["test machines: tests across runs"]
MAX_ID = 2**63 - 1  # a larger id is no row's (and PostgreSQL's bigint refuses it)


def _refusal(description):
    return OpenApiResponse(ErrorSerializer, description=description)


class NotFound(exceptions.NotFound):
    default_code = "not_found"


def resolve_or_refuse(data) -> tuple[str, str, str]:
    """(key, file_path, file_name) of the test the validated query names (?name= or ?test=)."""
    if data.get("test") is not None:
        test = Test.objects.filter(pk=data["test"]).values_list(
            "identity_key", "file_path", "file_name").first()
        if test is None:
            raise NotFound(f"No test {data['test']}.")
        return test
    try:
        return history.resolve(data["name"])
    except history.UnknownTest as error:
        raise NotFound(str(error)) from None
    except history.AmbiguousName as error:
        raise exceptions.ValidationError({"name": [str(error)]}) from None


class TestNameQuery(serializers.Serializer):
    name = serializers.CharField(
        required=False, max_length=1400, trim_whitespace=False,
        help_text="the test's full identity (a pytest node id such as "
                  "'tests/test_api.py::TestA::test_b[1]', a JUnit 'classname::name', a "
                  "script's path) or its name alone when only one test has it")
    test = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                    help_text="or: the pk of one of its runs' tests")

    def validate(self, data):
        if not data.get("name") and data.get("test") is None:
            raise serializers.ValidationError(
                {"name": ["Say which test: ?name=<its identity or name> or ?test=<a test pk>."]})
        return data


class HistoryQuery(TestNameQuery):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=history.MAX_HISTORY,
                                     default=50, help_text="results, newest first (50; at most "
                                                           f"{history.MAX_HISTORY})")
    branch = serializers.CharField(required=False, max_length=255, allow_blank=True,
                                   help_text="only runs of this branch")
    machine = serializers.CharField(required=False, max_length=256, allow_blank=True,
                                    help_text="only runs of this machine (its name)")


def quarantine_body(mark) -> dict | None:
    if mark is None:
        return None
    return {"identity": mark.identity, "reason": mark.reason, "by": mark.by_name,
            "since": S.iso(mark.created)}


class QuarantineMark(serializers.Serializer):
    identity = serializers.CharField()
    reason = serializers.CharField()
    by = serializers.CharField(help_text="who set it")
    since = serializers.DateTimeField()


def QuarantineBody():
    return QuarantineMark(allow_null=True, help_text="null unless a person quarantined it")


HistoryResult = type("TestHistoryResult", (serializers.Serializer,), {
    "test": serializers.IntegerField(help_text="the test's pk in that run"),
    "run": serializers.IntegerField(), "machine_name": serializers.CharField(),
    "timestamp": serializers.DateTimeField(help_text="the run's (the machine's time)"),
    "commit": serializers.CharField(), "branch": serializers.CharField(),
    "status": serializers.CharField(),
    "outcome": serializers.CharField(help_text="the test tool's outcome, else the status"),
    "attempts": serializers.ListField(child=serializers.CharField()),
    "duration": serializers.FloatField(allow_null=True, help_text="seconds"),
    "message": serializers.CharField(),
})

HistoryReply = type("TestHistory", (serializers.Serializer,), {
    "identity": serializers.CharField(), "file_path": serializers.CharField(),
    "file_name": serializers.CharField(), "quarantine": QuarantineBody(),
    "runs": serializers.IntegerField(help_text="results listed"),
    "passed": serializers.IntegerField(), "failed": serializers.IntegerField(
        help_text="failed or error"),
    "pass_rate": serializers.FloatField(allow_null=True,
                                        help_text="passed / (passed + failed), 0 to 1"),
    "results": HistoryResult(many=True),
})


def history_result(test) -> dict:
    run = test.master_scenario.run
    result = getattr(test, "result", None)
    return {
        "test": test.pk, "run": run.pk, "machine_name": run.machine.machine_name,
        "timestamp": S.iso(run.timestamp), "commit": run.commit, "branch": run.branch,
        "status": test.status, "outcome": (result.outcome if result else "") or test.status,
        "attempts": result.attempts if result else [], "duration": test.duration,
        "message": result.message if result else "",
    }


def history_body(file_path, file_name, tests, mark) -> dict:
    """The TestHistory body of `tests` (history.history's), `mark` the test's Quarantine or
    None."""
    passed, failed, rate = history.tally(tests)
    return {
        "identity": O.identity(file_path, file_name), "file_path": file_path,
        "file_name": file_name,
        "quarantine": quarantine_body(mark),
        "runs": len(tests), "passed": passed, "failed": failed,
        "pass_rate": rate, "results": [history_result(t) for t in tests],
    }


@extend_schema(
    tags=TAGS, parameters=[HistoryQuery],
    responses={200: HistoryReply,
               400: _refusal("no ?name= or ?test=, a bad limit, or a name that several tests "
                             "have (the message lists their identities)"),
               404: _refusal("no test has that identity or name")},
    summary="A test's recent results across runs and machines, newest first.")
class TestHistoryView(APIView):
    def get(self, request):
        query = HistoryQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        key, file_path, file_name = resolve_or_refuse(data)
        tests = history.history(key, data["limit"], data.get("branch", ""),
                                data.get("machine", ""))
        return Response(history_body(file_path, file_name, tests,
                                     history.quarantines_of([key]).get(key)))


# --- flaky tests -------------------------------------------------------------------------------

FlakyEntry = type("FlakyTest", (serializers.Serializer,), {
    "identity": serializers.CharField(), "file_path": serializers.CharField(),
    "file_name": serializers.CharField(),
    "flips": serializers.IntegerField(help_text="most outcome changes over its last "
                                                "TM_FLAKY_RUNS results on one branch"),
    "passes": serializers.IntegerField(help_text="in the window"),
    "failures": serializers.IntegerField(help_text="failed or error, in the window"),
    "last_seen": serializers.DateTimeField(help_text="when its last run arrived"),
    "last_run": serializers.IntegerField(), "last_status": serializers.CharField(),
    "commit": serializers.CharField(help_text="a commit it passed and failed on, else its "
                                              "last run's"),
    "branch": serializers.CharField(), "reasons": serializers.ListField(
        child=serializers.CharField()),
    "quarantine": QuarantineBody(),
})

FlakyReply = type("FlakyTests", (serializers.Serializer,), {
    "window": inline_serializer("FlakyWindow", {
        "days": serializers.IntegerField(), "runs": serializers.IntegerField(),
        "min_flips": serializers.IntegerField()}),
    "count": serializers.IntegerField(),
    "tests": FlakyEntry(many=True),
})


def flaky_body(tests) -> dict:
    marks = history.quarantines_of([t.key for t in tests])
    return {
        "window": {"days": settings.TM_FLAKY_DAYS, "runs": settings.TM_FLAKY_RUNS,
                   "min_flips": settings.TM_FLAKY_FLIPS},
        "count": len(tests),
        "tests": [{
            "identity": O.identity(t.file_path, t.file_name), "file_path": t.file_path,
            "file_name": t.file_name, "flips": t.flips, "passes": t.passes,
            "failures": t.failures, "last_seen": S.iso(t.last_seen), "last_run": t.last_run,
            "last_status": t.last_status, "commit": t.commit, "branch": t.branch,
            "reasons": t.reasons, "quarantine": quarantine_body(marks.get(t.key)),
        } for t in tests],
    }


@extend_schema(
    tags=TAGS, responses={200: FlakyReply},
    summary="The flaky tests of the last TM_FLAKY_DAYS days, the last seen first: passed and "
            "failed on one commit (or on a retry), or flipped TM_FLAKY_FLIPS times over "
            "their last TM_FLAKY_RUNS results on a branch.")
class FlakyTestsView(APIView):
    def get(self, request):
        return Response(flaky_body(history.flaky_tests()))


# --- comparing two runs ------------------------------------------------------------------------

class CompareQuery(serializers.Serializer):
    head = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="the run to look at (its pk)")
    base = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                    help_text="the run to compare it with; default: the run "
                                              "before it (see `against`)")
    against = serializers.ChoiceField(
        ["machine", "branch"], required=False, default="machine",
        help_text="without `base`: the previous run of the head's machine (`machine`), or the "
                  "previous run on the head's branch, any machine (`branch`)")


def find_runs(data) -> tuple[Run, Run]:
    runs = Run.objects.select_related("machine", "master_scenario")
    head = runs.filter(pk=data["head"]).first()
    if head is None:
        raise NotFound(f"No run {data['head']} (head).")
    if data.get("base") is not None:
        base = runs.filter(pk=data["base"]).first()
        if base is None:
            raise NotFound(f"No run {data['base']} (base).")
        return base, head
    if data["against"] == "branch" and not head.branch:
        raise exceptions.ValidationError({"against": [
            f"Run {head.pk} has no branch: compare against=machine, or give ?base=."]})
    base = history.previous_run(head, data["against"])
    if base is None:
        where = (f"machine {head.machine.machine_name!r}" if data["against"] == "machine"
                 else f"branch {head.branch!r}")
        raise NotFound(f"Run {head.pk} is the first run of {where}: nothing to compare it "
                       f"with (give ?base=).", code="no_previous_run")
    return base, head


def run_ref(run) -> dict:
    return {"run": run.pk, "machine_name": run.machine.machine_name,
            "timestamp": S.iso(run.timestamp), "commit": run.commit, "branch": run.branch,
            "status": run.master_scenario.status}


def side_body(side) -> dict | None:
    if side is None:
        return None
    return {"test": side.test, "status": side.status, "outcome": side.outcome or side.status,
            "duration": side.duration}


def compare_body(base, head, found, marks) -> dict:
    def pair(p):
        return {"identity": O.identity(p.file_path, p.file_name), "file_path": p.file_path,
                "file_name": p.file_name, "base": side_body(p.base), "head": side_body(p.head),
                "change": p.change, "quarantined": p.key in marks}

    return {"base": run_ref(base), "head": run_ref(head),
            "counts": {name: len(pairs) for name, pairs in found.items()},
            **{name: [pair(p) for p in pairs] for name, pairs in found.items()}}


RunRef = type("ComparedRun", (serializers.Serializer,), {
    "run": serializers.IntegerField(), "machine_name": serializers.CharField(),
    "timestamp": serializers.DateTimeField(), "commit": serializers.CharField(),
    "branch": serializers.CharField(), "status": serializers.CharField()})
SideBody = type("ComparedTestSide", (serializers.Serializer,), {
    "test": serializers.IntegerField(), "status": serializers.CharField(),
    "outcome": serializers.CharField(),
    "duration": serializers.FloatField(allow_null=True)})
PairBody = type("ComparedTest", (serializers.Serializer,), {
    "identity": serializers.CharField(), "file_path": serializers.CharField(),
    "file_name": serializers.CharField(),
    "base": SideBody(allow_null=True, help_text="null: not in the base run"),
    "head": SideBody(allow_null=True, help_text="null: not in the head run"),
    "change": serializers.FloatField(allow_null=True,
                                     help_text="seconds the head took more (negative: less)"),
    "quarantined": serializers.BooleanField()})
CATEGORY_HELP = {
    "newly_failing": "failed or error in the head, not in the base",
    "fixed": "failed or error in the base, passed in the head",
    "still_failing": "failed or error in both",
    "new": "in the head only", "removed": "in the base only",
    "duration_changes": "the 20 tests whose duration changed most, biggest first",
}
CompareReply = type("RunComparison", (serializers.Serializer,), {
    "base": RunRef(), "head": RunRef(),
    "counts": inline_serializer("RunComparisonCounts", {
        name: serializers.IntegerField() for name in CATEGORY_HELP}),
    **{name: PairBody(many=True, help_text=text) for name, text in CATEGORY_HELP.items()},
})


@extend_schema(
    tags=TAGS, parameters=[CompareQuery],
    responses={200: CompareReply,
               400: _refusal("no head, a run id that is not a number, an unknown `against`, "
                             "or against=branch for a run without a branch"),
               404: _refusal("no such run, or (without base) no run before the head")},
    summary="Two runs compared: newly failing, fixed, still failing, new and removed tests, "
            "and the biggest duration changes.")
class CompareRunsView(APIView):
    def get(self, request):
        query = CompareQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        base, head = find_runs(query.validated_data)
        found = history.compare_runs(base, head)
        keys = {p.key for pairs in found.values() for p in pairs}
        return Response(compare_body(base, head, found, history.quarantines_of(keys)))


# --- quarantine --------------------------------------------------------------------------------

class QuarantineInput(TestNameQuery):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000,
                                   default="", help_text="why, e.g. the issue that tracks it")


QuarantineList = type("Quarantines", (serializers.Serializer,), {
    "count": serializers.IntegerField(), "tests": QuarantineMark(many=True)})


@extend_schema(
    tags=TAGS, methods=["GET"], responses={200: QuarantineList},
    summary="The quarantined tests, the latest first.")
@extend_schema(
    tags=TAGS, methods=["POST"], request=QuarantineInput,
    responses={201: QuarantineMark, 200: QuarantineMark,
               400: _refusal("no test named, or a name several tests have"),
               403: _refusal("not logged in, or no CSRF token"),
               404: _refusal("no test has that identity or name")},
    summary="Quarantine a test (logged in): 201 new, 200 when only its reason changed.")
@extend_schema(
    tags=TAGS, methods=["DELETE"], parameters=[TestNameQuery],
    responses={204: None, 400: _refusal("no test named"),
               403: _refusal("not logged in, or no CSRF token"),
               404: _refusal("no such test, or it is not quarantined")},
    summary="Lift a test's quarantine (logged in).")
class QuarantineView(APIView):
    def get(self, request):
        marks = list(Quarantine.objects.all()[:1000])
        return Response({"count": len(marks), "tests": [quarantine_body(m) for m in marks]})

    def post(self, request):
        data = QuarantineInput(data=request.data)
        data.is_valid(raise_exception=True)
        key, file_path, file_name = resolve_or_refuse(data.validated_data)
        mark, created = history.quarantine(key, file_path, file_name,
                                           data.validated_data["reason"], request.user)
        return Response(quarantine_body(mark),
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def delete(self, request):
        query = TestNameQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        key, file_path, file_name = resolve_or_refuse(query.validated_data)
        if not history.release(key):
            raise NotFound(f"{O.identity(file_path, file_name)} is not quarantined.")
        return Response(status=status.HTTP_204_NO_CONTENT)
