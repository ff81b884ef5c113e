"""POST /tm_api/batch/: many reports of one machine in one request.

A machine that reports thousands of tests (a pytest session) would otherwise make a request per
start and per stop. The batch carries the same reports, with the same fields and validation as
the per-report endpoints (which stay as they are), and applies them in order, in one
transaction, with the same rules and outcomes as those endpoints (services.apply_reports, which
reads and writes a batch at once, not per report):

- Malformed (any report invalid, an unknown `type`, a report naming another machine): 400, its
  index in the field names (`reports[3].file_name`), nothing applied.
- Refused by the domain (a start or stop with no matching test, a machine that has no dry run
  yet: the 409 and 404 of the single endpoints): that report changes nothing, the others are
  applied, and the batch answers 200 with one outcome per report. A refusal is an answer, not a
  failure: resending the batch would be refused the same way, so the client must not.
- Anything else (database unavailable, a crash): nothing applied, the batch may be sent again.
- Idempotency-Key: the batch's answer is stored with its effects; a retry of a stored batch gets
  that answer again and applies nothing.
"""

from drf_spectacular.utils import (
    OpenApiExample,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.response import Response

import idempotency
from idempotency.schema import IDEMPOTENCY_KEY
from tm_api import quick_validation, services
from tm_api.auth import check_token_allows
from tm_api.models import machine_key
from tm_api.serializers import DryRunInput, TestStartInput, TestStopInput
from tm_api.views import MachineReport, _errors, machine_report_view

# One request's worth: a pytest session sends a batch every half second, far below this.
MAX_REPORTS = 1000

DRY_RUN, TEST_START, TEST_STOP = "dry_run", "test_start", "test_stop"
REPORT_INPUTS = {DRY_RUN: DryRunInput, TEST_START: TestStartInput, TEST_STOP: TestStopInput}


# --- the schema's view of a report: a single endpoint's body with a `type` ----------------------

class _Typed:
    def get_fields(self):
        fields = super().get_fields()
        fields["machine_name"].required = False
        fields["machine_name"].help_text = "optional; if given, the batch's machine (in any case)"
        return {"type": serializers.ChoiceField(choices=[self.report_type]), **fields}


class DryRunReport(_Typed, DryRunInput):
    report_type = DRY_RUN


class TestStartReport(_Typed, TestStartInput):
    report_type = TEST_START


class TestStopReport(_Typed, TestStopInput):
    report_type = TEST_STOP


REPORT_SCHEMA = PolymorphicProxySerializer(
    component_name="MachineReportOfBatch",
    serializers={DRY_RUN: DryRunReport, TEST_START: TestStartReport, TEST_STOP: TestStopReport},
    resource_type_field_name="type",
)


@extend_schema_field(REPORT_SCHEMA)
class ReportField(serializers.DictField):
    pass


class BatchInput(serializers.Serializer):
    machine_name = serializers.CharField(max_length=256)
    reports = serializers.ListField(child=ReportField(), min_length=1, max_length=MAX_REPORTS,
                                    help_text=f"applied in this order; at most {MAX_REPORTS}")

    def validate(self, data):
        """Each report as its own endpoint validates it (tm_api.quick_validation, else DRF);
        errors keyed by the report's index."""
        name, key = data["machine_name"], machine_key(data["machine_name"])
        reports, errors = [], {}
        # One serializer per kind for the whole batch: DRF copies a serializer's fields each time
        # one is made, which was most of the cost of a report (a batch holds hundreds).
        inputs = {}
        for index, report in enumerate(data["reports"]):
            kind = report.get("type")
            if kind not in REPORT_INPUTS:
                errors[index] = {"type": [f"Must be one of {', '.join(REPORT_INPUTS)}."]}
                continue
            body = {k: v for k, v in report.items() if k != "type"}
            given = body.setdefault("machine_name", name)
            if not isinstance(given, str) or machine_key(given) != key:
                errors[index] = {"machine_name": [
                    f"Every report of a batch is of its machine ({name!r})."]}
                continue
            quick = quick_validation.validated(REPORT_INPUTS[kind], body)
            if quick is not None:
                reports.append((kind, quick))
                continue
            if kind not in inputs:
                inputs[kind] = REPORT_INPUTS[kind]()
            try:
                reports.append((kind, inputs[kind].run_validation(body)))
            except serializers.ValidationError as error:
                errors[index] = serializers.as_serializer_error(error)
        if errors:
            raise serializers.ValidationError({"reports": errors})
        return {"machine_name": name, "reports": reports}


# --- the reply ---------------------------------------------------------------------------------

class ReportOutcome(serializers.Serializer):
    """What the report's own endpoint would have answered, in short."""

    type = serializers.ChoiceField(choices=list(REPORT_INPUTS))
    status = serializers.IntegerField(
        help_text="201 (dry run) or 202: applied; 404 (no such machine) or 409 (no test in the "
                  "needed state): refused, nothing changed, the batch goes on")
    run = serializers.IntegerField(required=False, help_text="the new run's pk (dry run)")
    test = serializers.IntegerField(required=False, help_text="the test's pk (start, stop)")
    code = serializers.CharField(required=False, help_text="refused: machine_not_found or "
                                                           "no_matching_test")
    detail = serializers.CharField(required=False, help_text="refused: why")


class BatchReply(serializers.Serializer):
    machine_name = serializers.CharField()
    applied = serializers.IntegerField(help_text="reports applied")
    refused = serializers.IntegerField(help_text="reports refused (404 or 409 in results)")
    results = ReportOutcome(many=True, help_text="one per report, in the batch's order")


@extend_schema(
    tags=["test machines: machines write"], request=BatchInput, parameters=[IDEMPOTENCY_KEY],
    responses={200: BatchReply, **_errors(400, 401, 403, 422)},
    summary="Many reports of one machine (dry runs, starts, stops), applied in order at once.",
    description=(
        "Each report is the body of its own endpoint (/tm_api/dry_run/, test_start/, "
        "test_stop/) with a `type`; `machine_name` may be left out of it. An invalid report: "
        "400 naming its index (`reports[3].file_name`), nothing applied. Otherwise the reports "
        "are applied in order in one transaction and the answer is 200 with one outcome per "
        "report: a report with no matching test (409) or no such machine (404) changed nothing "
        "and did not stop the others; do not send it again. With an Idempotency-Key, a retried "
        f"batch is answered again and applied once. At most {MAX_REPORTS} reports."
    ),
    examples=[OpenApiExample("a test starts and passes", request_only=True, value={
        "machine_name": "rack-3", "reports": [
            {"type": TEST_START, "file_path": "tests/test_api.py", "file_name": "test_login",
             "timestamp_start": "2024-05-01T10:00:00.100000+00:00"},
            {"type": TEST_STOP, "file_path": "tests/test_api.py", "file_name": "test_login",
             "status": "passed", "timestamp_stop": "2024-05-01T10:00:00.350000+00:00"}]})],
)
class BatchView(MachineReport):
    def post(self, request):
        serializer = BatchInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        batch = serializer.validated_data
        machine_name = batch["machine_name"]
        check_token_allows(request, machine_name)

        def write():
            results = services.apply_reports(machine_name, batch["reports"])
            refused = sum(1 for result in results if result["status"] >= 400)
            return Response({"machine_name": machine_name, "applied": len(results) - refused,
                             "refused": refused, "results": results})

        scope = f"tm_api:{machine_key(machine_name)}"
        return idempotency.once(scope, request, request.data, write)


batch_view = machine_report_view(BatchView)
