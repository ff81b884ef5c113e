import functools
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotAuthenticated, NotFound, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

import idempotency
from idempotency.schema import IDEMPOTENCY_KEY
from plumbing import time_range, trace_links
from plumbing.access import dashboard_page
from plumbing.errors import ErrorSerializer, error_body
from plumbing.ingest_path import body_read, called_from_sync_code, drf_answer, on_pool
from plumbing.schema import CONTENT_ENCODING
from plumbing.workers import WorkerThreads
from tracking import services
from tracking.auth import (
    NO_BEARER_TOKEN,
    ProjectTokenAuthentication,
    ProjectTokenRequired,
    SeedProjectTokenAuthentication,
)
from tracking.batches import event_error, read_batch
from tracking.models import Project
from tracking.serializers import (
    WINDOWS,
    BatchResultSerializer,
    BatchSerializer,
    LegacyTrackerEventSerializer,
    ProjectSerializer,
    RequestFilterSerializer,
    RequestMetricSerializer,
    SummarySerializer,
    WindowQuerySerializer,
)
from tracking.wire import EventError, parse_seed_event

ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (400, 401, 403, 404, 413, 429)}


def _error(detail, code, http_status, errors=None):
    return Response(error_body(detail, code, errors), status=http_status)


# --- ingest -------------------------------------------------------------------------------------

class SeedIngestView(APIView):
    """The legacy tracker route: one event per request, token in the body."""

    authentication_classes = [SeedProjectTokenAuthentication]
    permission_classes = [AllowAny]  # a body without a token is answered 401 as it is read

    @staticmethod
    def parsed(request):
        """(token, event) of the body, or the answer refusing it."""
        try:
            return parse_seed_event(request.data)
        except EventError as error:
            name, message = event_error(error)
            if error.field == "project_token":
                return _error("project_token is required.", "not_authenticated", 401)
            return _error(f"{name}: {message}", "invalid", 400, {name: [message]})

    @classmethod
    def check_on_the_loop(cls, view, request):
        """A body that is not JSON: 400 on the event loop (the route's authentication, which
        reads the token from the body, answers it the same). The project, its token, the rate
        and the event's fields are checked on the ingest thread."""
        request.data  # noqa: B018 - DRF's ParseError, answered as DRF does
        return None

    @extend_schema(
        operation_id="tracking_legacy_ingest", tags=["tracking"],
        request=LegacyTrackerEventSerializer,
        responses={201: BatchResultSerializer, **ERRORS},
        summary="Store one request from the legacy tracker (rigidanalytics-tracker 2.0.5)",
        description=(
            "That client never retries, so a burst waits its turn instead of being refused "
            "(docs/limits.md): 429 with Retry-After, nothing stored, only when "
            "TRACKING_INGEST_MAX_WAITING requests already wait in this server process or this "
            "one waited TRACKING_INGEST_MAX_WAIT_SECONDS."
        ),
    )
    def post(self, request, project_id):
        parsed = self.parsed(request)
        if isinstance(parsed, Response):
            return parsed
        _, event = parsed
        # The body has its token (parsed): SeedProjectTokenAuthentication found its project.
        accepted = services.ingest_events(request.auth, [event])
        return Response({"accepted": accepted, "rejected": 0, "rejected_events": []},
                        status=status.HTTP_201_CREATED)


class BatchIngestView(APIView):
    """This project's tracker: gzip'd JSON batches, token in the Authorization header."""

    authentication_classes = [ProjectTokenAuthentication]
    permission_classes = [ProjectTokenRequired]
    parser_classes = []  # the body is read (and gunzipped) by tracking.batches

    @classmethod
    def check_on_the_loop(cls, view, request):
        """No bearer token: 401 on the event loop, before any lookup."""
        if ProjectTokenAuthentication.presented_token(request) is None:
            raise NotAuthenticated(NO_BEARER_TOKEN)

    @extend_schema(
        operation_id="tracking_batch_ingest", tags=["tracking"],
        # Explicit media type: the view has no parsers (it reads the body itself), so
        # drf-spectacular would otherwise document no body at all.
        request={"application/json": BatchSerializer},
        parameters=[CONTENT_ENCODING, IDEMPOTENCY_KEY],
        responses={200: BatchResultSerializer, **ERRORS,
                   422: OpenApiResponse(ErrorSerializer, description=(
                       "the Idempotency-Key was used before with another body"))},
        summary="Store a batch of requests from monitor-request-tracker",
        description=(
            "Body: a JSON batch, plain or gzip'd (`Content-Encoding: gzip`); at most "
            "TRACKING_MAX_BATCH_BYTES uncompressed and TRACKING_MAX_BATCH_EVENTS events (413). "
            "Header: `Authorization: Bearer <project token>` (401 without, 403 unknown token). "
            "Optional `Idempotency-Key`: a retry with the same key and project answers the first "
            "answer again without storing twice. Valid events are stored even when others are "
            "not (partial success): 200 with `accepted`, `rejected` and each `rejected_events` "
            "entry naming the field. 400 only when no event could be stored. A burst waits "
            "its turn (docs/limits.md); 429 with Retry-After, nothing stored, when "
            "TRACKING_INGEST_MAX_WAITING requests already wait in this server process or this "
            "one waited TRACKING_INGEST_MAX_WAIT_SECONDS."
        ),
    )
    def post(self, request):
        project = request.auth
        batch = read_batch(request.body, request.headers.get("Content-Encoding", ""), project)
        if batch.all_rejected:
            return Response(batch.refusal(), status=400)

        def write():
            return Response(batch.answer(services.ingest_events(
                project, batch.events, dropped_by_client=batch.dropped)))

        # A retried batch (same key, same project) is answered again, not stored twice. Its
        # bytes identify it: a tracker resends a batch as it first sent it, and hashing them
        # costs far less than writing the parsed batch out again.
        return idempotency.once(f"tracking:{project.pk}", request, batch.raw, write)


ingest_threads = WorkerThreads("tracking-ingest", "TRACKING_INGEST_THREADS")


def _ingest_view(view_class):
    """The view, async: what needs no lookup is answered on the event loop (the view's
    check_on_the_loop, by DRF's own code), the rest in one hop to where ingest runs best. How
    many run at once, and how the others wait their turn, is tracking.ingest_queue's (in
    front of Django, in asgi.py).

    On PostgreSQL the ingest runs on TRACKING_INGEST_THREADS threads of their own, each with a
    kept connection (plumbing.workers), so one batch's database round trips overlap with
    the parsing of the next (SQLite serialises writers anyway: Django's sync thread). A caller
    that already has a transaction open on this thread (a test's) keeps the ingest on its own
    thread and connection, inside that transaction.
    """
    sync_view = view_class.as_view()
    to_async = sync_to_async(sync_view)

    @functools.wraps(sync_view)
    async def view(request, *args, **kwargs):
        if called_from_sync_code():
            return await to_async(request, *args, **kwargs)
        body_read(request)
        refusal = drf_answer(view_class, request, view_class.check_on_the_loop, **kwargs)
        if refusal is not None:
            return refusal
        # An attribute read, no query: this thread's connection is a test's, or never used.
        if (settings.TRACKING_INGEST_THREADS > 0
                and connections["default"].vendor == "postgresql"
                and not connections["default"].in_atomic_block):
            return await on_pool(ingest_threads, sync_view, request, *args, **kwargs)
        return await to_async(request, *args, **kwargs)

    return view


seed_ingest = _ingest_view(SeedIngestView)
batch_ingest = _ingest_view(BatchIngestView)


# --- read API -----------------------------------------------------------------------------------

def _project_or_404(project_id) -> Project:
    project = Project.objects.filter(public_id=project_id).first()
    if project is None:
        raise NotFound("No such project.")
    return project


def _window_arguments(params):
    query = WindowQuerySerializer(data=params)
    query.is_valid(raise_exception=True)
    data = query.validated_data
    until = data.get("until")
    since = data.get("since")
    for name, value in (("since", since), ("until", until)):
        # Nothing is stored outside the range, and date arithmetic near year 1 overflows.
        if value is not None and not time_range.accepted(value):
            raise ValidationError({name: [f"must be {time_range.RANGE}."]})
    if "last" in data:
        since = (until or timezone.now()) - timedelta(minutes=WINDOWS[data["last"]])
    return since, until


class ProjectListView(generics.ListAPIView):
    serializer_class = ProjectSerializer
    queryset = Project.objects.all()

    @extend_schema(operation_id="tracking_projects", tags=["tracking"])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class SummaryView(APIView):
    @extend_schema(
        operation_id="tracking_project_summary", tags=["tracking"],
        parameters=[WindowQuerySerializer], responses={200: SummarySerializer, **ERRORS},
        summary="Counts, error rates and latency percentiles of a project over a window",
        description="From rollups only (fast at any number of stored requests). The window is "
                    "widened to whole minutes; default: all time. The series has one point per "
                    "minute for windows up to 6 hours, per hour up to 60 days, per day (or "
                    "several days, at most about 2,000 points) beyond.",
    )
    def get(self, request, project_id):
        project = _project_or_404(project_id)
        since, until = _window_arguments(request.query_params)
        window = services.resolve_window(project, since, until)
        return Response(SummarySerializer(services.summarize(project, window)).data)


class RequestListView(generics.ListAPIView):
    serializer_class = RequestMetricSerializer

    def get_queryset(self):
        project = _project_or_404(self.kwargs["project_id"])
        query = RequestFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        filters = dict(query.validated_data)
        since, until = _window_arguments(self.request.query_params)
        if {"since", "until", "last"} & set(filters):
            # The summary's window, whole minutes and none in the future, so that a page's
            # table lists the requests its summary counts.
            window = services.resolve_window(project, since, until)
            since, until = window.since, window.until
        filters.pop("last", None)
        filters.update(since=since, until=until)
        return services.filter_requests(project, **filters)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "trace_urls": self.trace_urls}

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        # The page's rows link to their traces: one query for the page, not one per row.
        found = trace_links.find([row.trace_id for row in page or ()], kinds=("trace",))
        self.trace_urls = {trace_id: links[0].url for trace_id, links in found.items()}
        return page

    trace_urls: dict = {}

    @extend_schema(operation_id="tracking_project_requests", tags=["tracking"],
                   parameters=[RequestFilterSerializer],
                   summary="A project's stored requests, newest first, with filters",
                   description="A window (since, until, last) is widened to whole minutes and "
                               "ends at the current minute at the latest, as the summary's: the "
                               "same window lists the requests the summary counts, as long as "
                               "they are kept (TRACKING_RAW_RETENTION_DAYS).")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# --- pages --------------------------------------------------------------------------------------

@dashboard_page
def index(request):
    projects = list(Project.objects.all())
    return render(request, "tracking/index.html",
                  {"overview": services.project_overview(projects)})


@dashboard_page
def project_page(request, project_id):
    project = get_object_or_404(Project, public_id=project_id)
    return render(request, "tracking/project.html", {
        "project": project, "windows": WINDOWS, "sort": services.REQUEST_SORTING.of(request.GET),
        "raw_retention_days": settings.TRACKING_RAW_RETENTION_DAYS,
    })
