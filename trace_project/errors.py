"""One JSON shape for every error an API answers.

    {"detail": "<one readable sentence>", "code": "<machine-readable code>",
     "errors": {"<field>": ["<message>", ...]}}      # "errors" only for invalid input

`detail` keeps DRF's key, so clients of the seeds that read {"detail": ...} keep working.
Django's own 404/500 pages answer in the same shape under the API prefixes.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DataError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

API_PATH_PREFIXES = ("/api/", "/tm_api/", "/tracking/")


def error_body(detail: str, code: str, errors: dict | None = None) -> dict:
    body = {"detail": detail, "code": code}
    if errors:
        body["errors"] = errors
    return body


def _flatten(errors, prefix=""):
    """{"a": {"b": ["x"]}, "c": [{"d": ["y"]}]} -> {"a.b": ["x"], "c[0].d": ["y"]}"""
    flat = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            if isinstance(key, int):  # DRF reports list items by index
                flat.update(_flatten(value, f"{prefix}[{key}]"))
                continue
            name = key if key != "non_field_errors" else ""
            flat.update(_flatten(value, f"{prefix}.{name}" if prefix and name else prefix or name))
    elif isinstance(errors, list) and errors and not all(isinstance(e, str) for e in errors):
        for index, value in enumerate(errors):
            if value:
                flat.update(_flatten(value, f"{prefix}[{index}]"))
    else:
        messages = errors if isinstance(errors, list) else [errors]
        flat[prefix or "non_field_errors"] = [str(m) for m in messages]
    return flat


def api_exception_handler(exc, context):
    # As DRF does inside exception_handler, so that `code` says what happened.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, DataError):
        # The database refused a value the request carried that passed validation (PostgreSQL
        # takes UTC offsets only up to 15:59, ?since=2024-01-01T00:00+20:23 parses in Python):
        # the client's input, so a 400 naming it, not a 500. The first line only: the rest
        # quotes SQL.
        set_rollback()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "value out of range"
        return Response(error_body(f"The database refused a value: {reason}.", "invalid"),
                        status=400)
    response = exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django's handler500 answers, in this shape too
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        field, messages = next(iter(errors.items()))
        where = "" if field == "non_field_errors" else f"{field}: "
        response.data = error_body(f"{where}{messages[0]}", "invalid", errors)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = error_body(str(detail), codes if isinstance(codes, str) else "error")
    return response


class ErrorSerializer(serializers.Serializer):
    """The error shape, for the OpenAPI schema."""

    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False
    )


def _is_api(request):
    return request.path.startswith(API_PATH_PREFIXES)


def page_not_found(request, exception):
    if _is_api(request):
        return JsonResponse(error_body("Not found.", "not_found"), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse(
            error_body("Internal server error; it has been logged.", "server_error"), status=500
        )
    return defaults.server_error(request)


def bad_request(request, exception):
    if _is_api(request):
        return JsonResponse(error_body("Bad request.", "bad_request"), status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    if _is_api(request):
        return JsonResponse(error_body("Permission denied.", "permission_denied"), status=403)
    return defaults.permission_denied(request, exception)


def csrf_failure(request, reason=""):
    if _is_api(request):
        return JsonResponse(error_body(f"CSRF check failed: {reason}", "csrf_failed"), status=403)
    from django.views.csrf import csrf_failure as html_csrf_failure

    return html_csrf_failure(request, reason)
