"""REST API of seed 003: machines write (token or, in development, anonymous), people read."""

import asyncio
import functools

from asgiref.sync import AsyncToSync, sync_to_async
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

import idempotency
from trace_project.errors import ErrorSerializer
from trace_project.rest_json import JSONParser
from trace_project.schema import IDEMPOTENCY_KEY
from trace_project.workers import WorkerThreads, kept_connection
from tm_api import bodies, live, services
from tm_api import status as S
from tm_api.auth import MachineTokenAuthentication, MachineWriter, check_token_allows
from tm_api.models import Machine, MasterScenario, Scenario, Test, machine_key
from tm_api.serializers import (
    DryRunInput,
    DryRunReply,
    MachineLastDataSerializer,
    MachineSerializer,
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


class MachineReport(APIView):
    """Base of the endpoints machines post to: token auth only (no session, so no CSRF)."""

    authentication_classes = [MachineTokenAuthentication]
    permission_classes = [MachineWriter]
    parser_classes = [JSONParser]

    def once(self, data, write):
        """write() applied once per Idempotency-Key of this machine; a retry with the same key
        gets the first answer again (idempotency/)."""
        scope = f"tm_api:{machine_key(data['machine_name'])}"
        return idempotency.once(scope, self.request, self.request.data, write)

    def validated(self, serializer_class):
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        check_token_allows(self.request, serializer.validated_data["machine_name"])
        return serializer.validated_data

    def handle_exception(self, exc):
        if isinstance(exc, services.MachineNotFound):
            exc = exceptions.NotFound(str(exc), code="machine_not_found")
        elif isinstance(exc, services.NoMatchingTest):
            exc = NoMatchingTestConflict(str(exc))
        return super().handle_exception(exc)


@extend_schema(
    tags=["test machines: machines write"], request=DryRunInput, parameters=[IDEMPOTENCY_KEY],
    responses={201: DryRunReply, **_errors(400, 401, 403, 422)},
    summary="A machine announces a run: every test it will run, all waiting.",
)
class DryRunView(MachineReport):
    def post(self, request):
        data = self.validated(DryRunInput)

        def write():
            services.record_dry_run(data["machine_name"], data["timestamp"],
                                    data["master_scenario"])
            return Response(dry_run_reply(data), status=status.HTTP_201_CREATED)

        return self.once(data, write)


@extend_schema(
    tags=["test machines: machines write"], request=TestStartInput, parameters=[IDEMPOTENCY_KEY],
    responses={202: TestStartInput, **_errors(400, 401, 403, 404, 409, 422)},
    summary="A test starts (the first waiting one with this file, in dry-run order).",
)
class TestStartView(MachineReport):
    def post(self, request):
        data = self.validated(TestStartInput)

        def write():
            test = services.start_test(data["machine_name"], data["file_path"],
                                       data["file_name"], data.get("timestamp_start"))
            return Response(
                {"machine_name": data["machine_name"], "file_path": data["file_path"],
                 "file_name": data["file_name"], "timestamp_start": S.iso(test.timestamp_start)},
                status=status.HTTP_202_ACCEPTED,
            )

        return self.once(data, write)


@extend_schema(
    tags=["test machines: machines write"], request=TestStopInput, parameters=[IDEMPOTENCY_KEY],
    responses={202: TestStopInput, **_errors(400, 401, 403, 404, 409, 422)},
    summary="A running test ends with a status; 'cancelled' cancels the rest of the run.",
)
class TestStopView(MachineReport):
    def post(self, request):
        data = self.validated(TestStopInput)

        def write():
            test = services.stop_test(data["machine_name"], data["file_path"],
                                      data["file_name"], data["status"],
                                      data.get("timestamp_stop"))
            return Response(
                {"machine_name": data["machine_name"], "file_path": data["file_path"],
                 "file_name": data["file_name"], "status": test.status,
                 "timestamp_stop": S.iso(test.timestamp_stop)},
                status=status.HTTP_202_ACCEPTED,
            )

        return self.once(data, write)


# --- where reports run ------------------------------------------------------------------------

write_threads = WorkerThreads("tm-write", "TM_WRITE_THREADS")


def _called_from_sync_code() -> bool:
    # A test client or async_to_sync: that caller's thread holds the connection (and maybe the
    # transaction) the report must use, as Django would run a sync view.
    return getattr(AsyncToSync.executors, "current", None) is not None


def on_write_threads(drf_view):
    """Run a machine-report view on TM_WRITE_THREADS threads of their own under the server.

    Django gives every sync request a thread of its own, so 50 machines posting at once meant
    50 threads fighting for the GIL and for the DATABASE_POOL_SIZE connections (a report that
    waited 2 s for one answered 500). Here reports queue for a few threads, each taking a pooled
    connection per report, and the view's frames are handed to the event loop without waiting.
    The view itself (DRF: auth, parsing, validation, errors) is unchanged.
    """
    sync_view = sync_to_async(drf_view)

    def run(request, loop, *args, **kwargs):
        live.send_frames_on(loop)
        try:
            with kept_connection():
                response = drf_view(request, *args, **kwargs)
                response.render()
            # Rendered here, so Django does not hop to yet another thread to render it.
            return HttpResponse(response.content, status=response.status_code,
                                headers=dict(response.items()))
        finally:
            live.send_frames_on(None)

    @functools.wraps(drf_view)
    async def view(request, *args, **kwargs):
        if settings.TM_WRITE_THREADS < 1 or _called_from_sync_code():
            return await sync_view(request, *args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            write_threads.executor, functools.partial(run, request, loop, *args, **kwargs)
        )

    return view


dry_run_view = on_write_threads(DryRunView.as_view())
test_start_view = on_write_threads(TestStartView.as_view())
test_stop_view = on_write_threads(TestStopView.as_view())


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
               summary="The runs (dry-run data) of a machine, newest first.")
class MachineDryRunDatasView(generics.GenericAPIView):
    serializer_class = RunSerializer

    def get_queryset(self):
        return runs_of(self.kwargs["pk"])

    def get(self, request, pk):
        _get(Machine, pk)
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([bodies.run_summary(m) for m in page])


@extend_schema(tags=READ_TAGS, responses={200: MachineLastDataSerializer, **_errors(404)},
               summary="The machine's last run (largest client timestamp) as a tree.")
class MachineLastDataView(APIView):
    def get(self, request, pk):
        return Response(bodies.machine_last_data(_get(Machine, pk)))
