"""The test-machine API: machines write (token or, in development, anonymous), people read."""

import asyncio
import functools
import threading

from asgiref.sync import sync_to_async
from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.authentication import get_authorization_header
from rest_framework.response import Response
from rest_framework.utils import json
from rest_framework.views import APIView

import idempotency
from idempotency.schema import IDEMPOTENCY_KEY
from plumbing import publisher, trace_links
from plumbing.errors import ErrorSerializer
from plumbing.ingest_path import body_read, called_from_sync_code, drf_answer, on_pool
from plumbing.rest_json import JSONParser
from plumbing.workers import WorkerThreads
from tm_api import bodies, junit, quick_validation, services
from tm_api import outcomes as O
from tm_api import status as S
from tm_api.auth import (
    KEYWORDS,
    MachineTokenAuthentication,
    MachineWriter,
    check_token_allows,
)
from tm_api.models import Machine, MasterScenario, Scenario, Test, TestResult, ci_of, machine_key
from tm_api.outcomes import result_of
from tm_api.serializers import (
    CiFields,
    DryRunInput,
    DryRunReply,
    MachineLastDataSerializer,
    MachineSerializer,
    RunFilters,
    RunSerializer,
    ScriptSerializer,
    TestSerializer,
    TestStartInput,
    TestStopInput,
    dry_run_reply,
)


class NoMatchingTestConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "no_matching_test"


def _get(model, pk):
    # DRF's own Http404 path ends up as code "error" in the shared handler; say not_found.
    row = model.objects.filter(pk=pk).first()
    if row is None:
        raise exceptions.NotFound(f"No {model._meta.verbose_name} {pk}.", code="not_found")
    return row


def _errors(*codes):
    described = {
        400: "invalid input: malformed JSON, a missing field, a bad timestamp or status",
        401: "no machine token (TM_ALLOW_ANONYMOUS_MACHINES off) or an unknown one",
        403: "the token belongs to another machine",
        404: "no machine with that name",
        409: "no test of that machine in the needed state",
        422: "the Idempotency-Key was used before on another endpoint or with another body",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=described[code]) for code in codes}


def _report_schema(request, replies, *codes, summary):
    """The OpenAPI description of a machine report: its body, its replies and its refusals
    (400, 401, 403 and 422 for every report, and `codes`)."""
    return extend_schema(
        tags=["test machines: machines write"], request=request, parameters=[IDEMPOTENCY_KEY],
        responses={**replies, **_errors(400, 401, 403, *codes, 422)}, summary=summary)


_serializers = threading.local()


def validated(input_class, data) -> dict:
    """`data` validated by the serializer `input_class`, as `is_valid(raise_exception=True)`
    then `validated_data` give it, by one serializer per class and thread: DRF deep-copies a
    serializer's declared fields each time one is made (0.05 ms for a start's four, 0.2 ms for a
    stop's thirteen, on every report), and `run_validation` keeps nothing between calls
    (tm_api/batch.py validates a batch's reports so too). Reports of the usual shape are
    checked by tm_api.quick_validation instead, which gives the same data without DRF's layers.
    Refused data is answered by a new serializer's is_valid, so that the 400's body is DRF's
    own, to the letter."""
    quick = quick_validation.validated(input_class, data)
    if quick is not None:
        return quick
    made = _serializers.__dict__.setdefault("by_class", {})
    serializer = made.get(input_class)
    if serializer is None:
        serializer = made[input_class] = input_class()
    try:
        return serializer.run_validation(data)
    except serializers.ValidationError:
        input_class(data=data).is_valid(raise_exception=True)
        raise


class MachineReport(APIView):
    """Base of the endpoints machines post to: token auth only (no session, so no CSRF)."""

    authentication_classes = [MachineTokenAuthentication]
    permission_classes = [MachineWriter]
    parser_classes = [JSONParser]
    input_class = None  # the report's serializer
    reply_status = status.HTTP_202_ACCEPTED

    def apply(self, data) -> dict:
        """Record the validated report; the reply's body."""
        raise NotImplementedError

    def post(self, request):
        # The report validated, its token allowed for its machine, then applied once per
        # Idempotency-Key of this machine: a retry with the same key gets the first answer
        # again (idempotency/).
        data = validated(self.input_class, request.data)
        check_token_allows(request, data["machine_name"])
        scope = f"tm_api:{machine_key(data['machine_name'])}"
        return idempotency.once(scope, request, request.data,
                                lambda: Response(self.apply(data), status=self.reply_status))


    @staticmethod
    def check_on_the_loop(view, request):
        """What DRF answers without the database: an Authorization header that is absent
        (401 unless anonymous machines are allowed) or malformed (401), and a body that is not
        JSON (400). A well-formed token is looked up on the write thread, with the report's
        rate and write: a body that is not JSON is answered 400 whatever the token (nothing
        was stored), and is not counted against the token's rate. A JSON body that is not a
        valid report is answered after the token and the rate, as DRF orders it."""
        if not _token_header_well_formed(request):
            view.perform_authentication(request)  # raises, or finds no token: no query
            view.check_permissions(request)
        if request.method == "POST":
            request.data  # noqa: B018 - DRF's ParseError or UnsupportedMediaType
        return None

    def handle_exception(self, exc):
        if isinstance(exc, services.MachineNotFound):
            exc = exceptions.NotFound(str(exc), code="machine_not_found")
        elif isinstance(exc, services.NoMatchingTest):
            exc = NoMatchingTestConflict(str(exc))
        return super().handle_exception(exc)


class TestReport(MachineReport):
    # A test's start or stop (`stamp` says which): the reply echoes the test's file and gives
    # the time stamped, and for a stop the status recorded. (No docstring: OpenAPI would show
    # it as each endpoint's description.)
    stamp = "timestamp_start"

    def apply(self, data):
        if self.stamp == "timestamp_start":
            test = services.start_test(data["machine_name"], data["file_path"],
                                       data["file_name"], data.get("timestamp_start"))
        else:
            test = services.stop_test(data["machine_name"], data["file_path"], data["file_name"],
                                      data["status"], data.get("timestamp_stop"), result_of(data))
        reply = {"machine_name": data["machine_name"], "file_path": data["file_path"],
                 "file_name": data["file_name"]}
        if "status" in data:
            reply["status"] = test.status
        reply[self.stamp] = S.iso(getattr(test, self.stamp))
        return reply


@_report_schema(DryRunInput, {201: DryRunReply},
                summary="A machine announces a run: every test it will run, all waiting.")
class DryRunView(MachineReport):
    input_class = DryRunInput
    reply_status = status.HTTP_201_CREATED

    def apply(self, data):
        services.record_dry_run(data["machine_name"], data["timestamp"], data["master_scenario"],
                                ci_of(data))
        return dry_run_reply(data)


@_report_schema(TestStartInput, {202: TestStartInput}, 404, 409,
                summary="A test starts (the first waiting one with this file, in dry-run order).")
class TestStartView(TestReport):
    input_class = TestStartInput
    stamp = "timestamp_start"


@_report_schema(TestStopInput, {202: TestStopInput}, 404, 409,
                summary="A running test ends with a status; 'cancelled' cancels the rest of the run.")
class TestStopView(TestReport):
    input_class = TestStopInput
    stamp = "timestamp_stop"


# --- the endpoint ------------------------------------------------------------------------------

class JunitQuery(CiFields):
    machine = serializers.CharField(max_length=256, help_text="the machine the run is of")


# The import's answer: the run, then how many tests, per outcome (tm_api.outcomes.OUTCOMES).
JunitReply = type("JunitReply", (serializers.Serializer,), {
    "run": serializers.IntegerField(help_text="the new run's pk (/machines/runs/<run>/)"),
    "machine_name": serializers.CharField(),
    "tests": serializers.IntegerField(),
    **{outcome: serializers.IntegerField(help_text=f"tests whose outcome is {outcome}")
       for outcome in O.OUTCOMES},
    "retried": serializers.IntegerField(help_text="tests with more than one attempt"),
    "refused": serializers.IntegerField(help_text="reports the run refused (0 for a valid "
                                                  "file)"),
})


@extend_schema(
    tags=["test machines: machines write"],
    request={"application/xml": {"type": "string", "format": "binary"}},
    parameters=[JunitQuery, IDEMPOTENCY_KEY],
    responses={201: JunitReply, **_errors(400, 401, 403, 422),
               413: OpenApiResponse(ErrorSerializer, description="larger than the import's "
                                                                 "limits"),
               415: OpenApiResponse(ErrorSerializer,
                                    description="not application/xml or text/xml")},
    summary="A JUnit XML report (any framework's) imported as one run of a machine.",
)
class JunitImportView(MachineReport):
    # A machine report whose body is XML, not JSON: MachineReport's token, refusals and apply
    # once per Idempotency-Key, with the machine and CI fields in the query. The token is
    # checked before the body is read, so that a stranger's megabytes are never parsed.
    parser_classes: list = []
    reply_status = status.HTTP_201_CREATED

    def apply(self, data):
        return junit.import_report(data["machine_name"], data["root"], data["ci"])

    @staticmethod
    def check_on_the_loop(view, request):
        """On the lean path: only the Authorization header's form (401 without the database);
        the body is XML, read by the view on the write thread after the token."""
        if not _token_header_well_formed(request):
            view.perform_authentication(request)
            view.check_permissions(request)
        return None

    def post(self, request):
        query = JunitQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        machine_name = query.validated_data["machine"]
        check_token_allows(request, machine_name)
        body = request._request.body
        if not body:
            raise junit.InvalidReport("The body is empty: send the JUnit XML report as the body.")
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type not in (*junit.XML_TYPES, "application/gzip", "application/x-gzip"):
            raise exceptions.UnsupportedMediaType(
                content_type or "(none)",
                detail="Send the report as application/xml or text/xml (gzip: "
                       "Content-Encoding: gzip).")
        data = {"machine_name": machine_name,
                "root": junit.parse(junit.decompressed(body, request.headers.get("Content-Encoding", ""))),
                "ci": ci_of(query.validated_data)}
        scope = f"tm_api:{machine_key(machine_name)}"
        return idempotency.once(scope, request, body,
                                lambda: Response(self.apply(data), status=self.reply_status))


def _token_header_well_formed(request) -> bool:
    header = get_authorization_header(request).split()
    return len(header) == 2 and header[0].lower() in KEYWORDS and header[1].isascii()


def _nothing_to_refuse_on_the_loop(request) -> bool:
    """True when check_on_the_loop would pass, told without building DRF's request and view
    (about 0.2 ms a report): a well-formed token header (or none, where anonymous machines are
    allowed), a JSON body DRF's parser takes, and headers DRF's content negotiation accepts.
    Anything else goes through check_on_the_loop for DRF's own answer."""
    if request.content_type != "application/json" or request.content_params.get(
            "charset", "utf-8").lower() not in ("utf-8", "utf8"):
        return False
    if request.headers.get("Accept", "*/*") not in ("*/*", "application/json"):
        return False
    if not (_token_header_well_formed(request) or (
            settings.TM_ALLOW_ANONYMOUS_MACHINES and "authorization" not in request.headers)):
        return False
    try:
        json.loads(request.body.decode("utf-8"))  # DRF's strict loads: NaN is refused
    except (ValueError, RecursionError):
        return False
    return True


# --- where reports run ------------------------------------------------------------------------

write_threads = WorkerThreads("tm-write", "TM_WRITE_THREADS")


def machine_report_view(view_class):
    """A machine report, async: checked on the event loop, written in one hop.

    What needs no database (the header's form, a body that is not JSON) is answered on the
    event loop by DRF's own code (MachineReport.check_on_the_loop). The rest, the whole DRF view
    (token, rate, fields, idempotency, the write), runs on one of TM_WRITE_THREADS threads, each
    with a kept connection (plumbing.workers): Django's own threads meant a thread per
    request fighting for the GIL and for the DATABASE_POOL_SIZE connections. The view's live
    frames are handed to the event loop without waiting.
    """
    drf_view = view_class.as_view()
    sync_view = sync_to_async(drf_view)

    def run(request, loop, *args, **kwargs):
        publisher.serve_on(loop)
        try:
            return drf_view(request, *args, **kwargs)
        finally:
            publisher.serve_on(None)

    @functools.wraps(drf_view)
    async def view(request, *args, **kwargs):
        if called_from_sync_code():
            return await sync_view(request, *args, **kwargs)
        body_read(request)
        if not _nothing_to_refuse_on_the_loop(request):
            refusal = drf_answer(view_class, request, view_class.check_on_the_loop)
            if refusal is not None:
                return refusal
        if settings.TM_WRITE_THREADS < 1:
            return await sync_view(request, *args, **kwargs)
        loop = asyncio.get_running_loop()
        return await on_pool(write_threads, run, request, loop, *args, **kwargs)

    return view


dry_run_view = machine_report_view(DryRunView)
test_start_view = machine_report_view(TestStartView)
test_stop_view = machine_report_view(TestStopView)
# The import runs on a write thread too (seconds for a 10,000-test report: one of the
# TM_WRITE_THREADS is busy that long, the others go on with reports).
junit_view = machine_report_view(JunitImportView)


# --- reads ---------------------------------------------------------------------------------

READ_TAGS = ["test machines: read"]


def _script_body(script):
    return {
        "pk": script.pk, "file_name": script.file_name, "file_path": script.file_path,
        "script": script.script, "status": script.status,
        "timestamp_start": S.iso(script.timestamp_start),
        "timestamp_stop": S.iso(script.timestamp_stop), "duration": script.duration,
    }


class ScriptDetail(APIView):
    model = None

    def get(self, request, pk):
        return Response(_script_body(_get(self.model, pk)))


@extend_schema(tags=READ_TAGS, responses={200: TestSerializer, **_errors(404)})
class TestDetailView(ScriptDetail):
    model = Test

    def get(self, request, pk):
        test = _get(self.model, pk)
        result = TestResult.objects.filter(test_id=test.pk).only("trace_id").first()
        trace_id = result.trace_id if result is not None else None
        links = (trace_links.find([trace_id], kinds=("trace", "requests")).get(trace_id, [])
                 if trace_id else [])
        return Response({**_script_body(test), "trace_id": trace_id,
                         "links": [{"kind": link.kind, "label": link.label,
                                    "url": request.build_absolute_uri(link.url)}
                                   for link in links]})


@extend_schema(tags=READ_TAGS, responses={200: ScriptSerializer, **_errors(404)})
class ScenarioDetailView(ScriptDetail):
    model = Scenario


@extend_schema(tags=READ_TAGS, responses={200: ScriptSerializer, **_errors(404)})
class MasterScenarioDetailView(ScriptDetail):
    model = MasterScenario


def machines_with_last_run():
    return Machine.objects.select_related("last_run__master_scenario").order_by(
        "machine_name", "pk"
    )


def machine_status_body(machine):
    master = machine.last_run.master_scenario if machine.last_run_id else None
    return bodies.machine_status(machine, master)


@extend_schema(tags=READ_TAGS, responses=MachineSerializer(many=True))
class MachineListView(generics.GenericAPIView):
    serializer_class = MachineSerializer

    def get_queryset(self):
        return machines_with_last_run()

    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([machine_status_body(m) for m in page])


def runs_of(machine_id):
    return (
        MasterScenario.objects.select_related("run")
        .filter(run__machine_id=machine_id)
        .order_by("-run__timestamp", "-run_id")
    )


@extend_schema(tags=READ_TAGS, responses=RunSerializer(many=True),
               parameters=[RunFilters],
               summary="The runs (dry-run data) of a machine, newest first; ?branch= and "
                       "?commit= (a prefix of at least 4 characters) filter them.")
class MachineDryRunDatasView(generics.GenericAPIView):
    serializer_class = RunSerializer

    def get_queryset(self):
        filters = RunFilters(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        runs = runs_of(self.kwargs["pk"])
        if filters.validated_data.get("branch"):
            runs = runs.filter(run__branch=filters.validated_data["branch"])
        if filters.validated_data.get("commit"):
            runs = runs.filter(run__commit__startswith=filters.validated_data["commit"])
        return runs

    def get(self, request, pk):
        _get(Machine, pk)
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([bodies.run_summary(m) for m in page])


@extend_schema(tags=READ_TAGS, responses={200: MachineLastDataSerializer, **_errors(404)},
               summary="The machine's last run (largest client timestamp) as a tree.")
class MachineLastDataView(APIView):
    def get(self, request, pk):
        return Response(bodies.machine_last_data(_get(Machine, pk)))
