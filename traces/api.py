"""REST for traces: /api/trace/<id>/ of the trace websocket protocol, and a filtered list."""

import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from plumbing.errors import ErrorSerializer
from traces import search, services
from traces.forms import TraceFilterForm
from traces.models import Trace
from traces.serializers import TraceSerializer, TraceSummarySerializer

ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


@extend_schema_view(
    get=extend_schema(summary="A trace with its span tree", responses={200: TraceSerializer,
                                                                        **ERRORS}),
    delete=extend_schema(summary="Delete a trace (logged-in users)",
                         responses={204: None, **ERRORS}),
)
class TraceDetailView(generics.RetrieveDestroyAPIView):
    queryset = Trace.objects.all()
    serializer_class = TraceSerializer

    def get_object(self):
        pk = self.kwargs["pk"]
        trace = search.find_trace(pk)
        if trace is None:
            raise NotFound(f"Trace {pk} does not exist.")
        self.check_object_permissions(self.request, trace)
        return trace

    def perform_destroy(self, instance):
        services.delete_trace(instance)


FILTER_PARAMETERS = [
    OpenApiParameter("name", OpenApiTypes.STR, description="Traces with a span of this exact name."),
    OpenApiParameter("service", OpenApiTypes.STR,
                     description="Traces of this service, or with a span of it."),
    OpenApiParameter("operation", OpenApiTypes.STR,
                     description="Traces with a span of this exact name (as `name`)."),
    OpenApiParameter("error", OpenApiTypes.BOOL,
                     description="true: traces with a span whose status is error; false: without."),
    OpenApiParameter("attribute", OpenApiTypes.STR, many=True,
                     description="key:value, repeatable: traces with a span having each such "
                                 "attribute (compared as text)."),
    OpenApiParameter("status", OpenApiTypes.STR, enum=["open", "complete", "inconsistent"]),
    OpenApiParameter("min_duration", OpenApiTypes.NUMBER,
                     description="Whole-trace duration at least this, in the trace's unit."),
    OpenApiParameter("max_duration", OpenApiTypes.NUMBER,
                     description="Whole-trace duration at most this, in the trace's unit."),
    OpenApiParameter("project", OpenApiTypes.UUID,
                     description="OTLP and Zipkin traces sent with this project's token (the "
                                 "project's id, as /api/projects/ and create_project give it)."),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Received at or after."),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Received before."),
]


@extend_schema(summary="Traces, newest first, filtered", parameters=FILTER_PARAMETERS,
               responses={200: TraceSummarySerializer(many=True), **ERRORS})
class TraceListView(generics.ListAPIView):
    serializer_class = TraceSummarySerializer

    def get_queryset(self):
        form = TraceFilterForm(self.request.query_params)
        if not form.is_valid():
            raise ValidationError({field: list(errors) for field, errors in form.errors.items()})
        filters = dict(form.cleaned_data)
        try:
            filters["attributes"] = search.attribute_filters(
                self.request.query_params.getlist("attribute"))
        except ValueError as error:
            raise ValidationError({"attribute": [str(error)]}) from None
        project = self.request.query_params.get("project")
        if project:
            try:
                filters["project"] = uuid.UUID(project)
            except ValueError:
                raise ValidationError({"project": [
                    f"expected a project id (a UUID), got {project[:80]!r}"]}) from None
        return search.search_traces(filters)




class ServicesSerializer(serializers.Serializer):
    services = serializers.ListField(child=serializers.CharField(),
                                     help_text="Every service a stored trace or span names, "
                                               "sorted.")


@extend_schema(summary="The services of stored traces (the trace list's service picker)",
               responses={200: ServicesSerializer, 403: ErrorSerializer})
class TraceServicesView(APIView):
    def get(self, request):
        return Response({"services": search.known_services()})
