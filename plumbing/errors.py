"""One JSON shape for every error an API answers.

    {"detail": "<one readable sentence>", "code": "<machine-readable code>",
     "errors": {"<field>": ["<message>", ...]}}      # "errors" only for invalid input

`detail` keeps DRF's key, so existing clients that read {"detail": ...} keep working.
Django's own 400/403/404/500 answers have the same shape under the API's paths; elsewhere they
are pages in the site's layout (templates/404.html, ...).
"""

import logging
import sys

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.views import defaults
from rest_framework import exceptions, serializers
from rest_framework.response import Response

API_PATH_PREFIXES = ("/api/", "/tm_api/", "/tracking/")

logger = logging.getLogger(__name__)

# While the database cannot be reached (down, restarting, every pooled connection taken), a
# request answers 503 with this, in a bounded time: the connect timeout and the pool's timeout
# (settings.py, DATABASE_CONNECT_TIMEOUT and DATABASE_POOL_TIMEOUT) bound the wait.
DATABASE_UNAVAILABLE = "The database is unavailable; nothing was stored. Try again shortly."
DATABASE_UNAVAILABLE_CODE = "database_unavailable"
RETRY_AFTER_SECONDS = 5


def is_database_unavailable(exc: BaseException | None) -> bool:
    """A connection that could not be made, was lost, or did not come from the pool in time
    (psycopg_pool.PoolTimeout is an OperationalError, wrapped by Django as its own). Errors of
    the request's own SQL or values (IntegrityError, DataError, ...) are not."""
    return isinstance(exc, (OperationalError, InterfaceError))


def log_database_unavailable(request, exc) -> dict:
    """Logs the outage for this request; returns the headers of its 503 answer."""
    logger.warning("%s %s: database unavailable: %s", request.method, request.path,
                   str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


def database_unavailable_response(request, exc) -> HttpResponse:
    """Django's 503 with Retry-After: the error shape under the API's paths, a page elsewhere."""
    headers = log_database_unavailable(request, exc)
    if _is_api(request):
        return JsonResponse(error_body(DATABASE_UNAVAILABLE, DATABASE_UNAVAILABLE_CODE),
                            status=503, headers=headers)
    try:
        # Without the request: the layout then asks nothing of the database (no user).
        body = loader.render_to_string("503.html")
    except Exception:
        logger.exception("The 503 page could not be rendered")
        body = ("<!doctype html><title>503 Service unavailable</title><h1>Service unavailable</h1>"
                "<p>The database is unavailable. Try again in a moment.</p>")
    return HttpResponse(body, status=503, headers=headers)


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
    # Imported here: rest_framework.views reads DRF's settings on import, whose classes
    # (throttles, ...) may import this module.
    from rest_framework.views import exception_handler, set_rollback

    # As DRF does inside exception_handler, so that `code` says what happened.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    if is_database_unavailable(exc):
        set_rollback()
        # A DRF Response, as every answer here: the ingest views render it in their threads.
        return Response(error_body(DATABASE_UNAVAILABLE, DATABASE_UNAVAILABLE_CODE), status=503,
                        headers=log_database_unavailable(context["request"], exc))
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
    return request.path.startswith(API_PATH_PREFIXES) or request.path == "/healthz"


def page_not_found(request, exception):
    if _is_api(request):
        return JsonResponse(error_body("Not found.", "not_found"), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    # Django calls this inside its `except`: the exception is at hand.
    exc = sys.exc_info()[1]
    if is_database_unavailable(exc):
        return database_unavailable_response(request, exc)
    if _is_api(request):
        return JsonResponse(
            error_body("Internal server error; it has been logged.", "server_error"), status=500
        )
    return _page_without_request(defaults.server_error, request, "500 Server error",
                                 "Something went wrong on our side; the error has been logged.")


def bad_request(request, exception):
    if _is_api(request):
        return JsonResponse(error_body("Bad request.", "bad_request"), status=400)
    return _page_without_request(defaults.bad_request, request, "400 Bad request",
                                 "The server could not understand this request.", exception)


def _page_without_request(view, request, title, sentence, *args):
    """400.html and 500.html in the site's layout; if rendering them fails too (a broken tag in
    base.html is what failed, say), a plain page rather than no answer at all."""
    try:
        return view(request, *args)
    except Exception:
        logger.exception("The %s page could not be rendered", title)
        return HttpResponse(f"<!doctype html><title>{title}</title><h1>{title}</h1>"
                            f"<p>{sentence}</p><p><a href=\"/\">Home</a></p>",
                            status=int(title[:3]))


def permission_denied(request, exception):
    if _is_api(request):
        return JsonResponse(error_body("Permission denied.", "permission_denied"), status=403)
    return defaults.permission_denied(request, exception)


def csrf_failure(request, reason=""):
    if _is_api(request):
        return JsonResponse(error_body(f"CSRF check failed: {reason}", "csrf_failed"), status=403)
    # Rendered here rather than by django.views.csrf, which gives its template no reason.
    return render(request, "403_csrf.html", {"reason": reason}, status=403)
