"""OTLP/HTTP (`POST /v1/traces`) and Zipkin v2 (`POST /api/v2/spans`): spans from OpenTelemetry
SDKs, Collectors and Zipkin exporters, authenticated by a project token (the request-metrics
API's projects and tokens: `Authorization: Bearer <token>`).

Answers as the OpenTelemetry protocol specification has them for OTLP/HTTP: 200 with an
ExportTraceServiceResponse in the request's encoding (protobuf or JSON), with partial_success
when spans were refused; every 4xx/5xx with a google.rpc.Status body in the request's encoding;
429/503 (retryable) with Retry-After. Zipkin's answer is 202 with an empty body.

Both run on the lean ingest path (plumbing.ingest_path): what needs no database (method,
content type, the Authorization header's form, the body's size, whether this process is
overloaded) is answered on the event loop; the rest (token look-up, decompression, decoding,
the write) in one hop to a worker thread with a kept connection.
"""

import asyncio
import json
import math
import time

from asgiref.sync import sync_to_async
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connections
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpResponse
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from plumbing import compressed, publisher
from plumbing.errors import error_body
from plumbing.ingest_path import called_from_sync_code
from plumbing.spans import spans_stored
from plumbing.tokens import FoundByDigest, bearer_token, token_digest, token_matches
from plumbing.workers import WorkerThreads, kept_connection
from traces import otel
from traces.span_ingest import SpansResult, ingest_spans

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# HTTP status -> the gRPC code of the google.rpc.Status body (as OTLP/gRPC would answer).
GRPC_CODES = {400: code_pb2.INVALID_ARGUMENT, 401: code_pb2.UNAUTHENTICATED,
              403: code_pb2.PERMISSION_DENIED, 405: code_pb2.UNIMPLEMENTED,
              413: code_pb2.RESOURCE_EXHAUSTED, 415: code_pb2.INVALID_ARGUMENT,
              429: code_pb2.RESOURCE_EXHAUSTED, 503: code_pb2.UNAVAILABLE}

write_threads = WorkerThreads("trace-otlp", "TRACE_INGEST_THREADS")


class Refused(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


class Turns:
    """How many OTLP/Zipkin writes one process runs at once (the worker threads on PostgreSQL,
    one on SQLite, which lets one writer in at a time), and how many may wait: past
    TRACE_OTLP_MAX_WAITING the answer is 503 with Retry-After, nothing stored (exporters retry
    it with backoff)."""

    def __init__(self):
        self.loop = None
        self.semaphore = None
        self.waiting = 0
        self.run_seconds = 0.01  # smoothed: the Retry-After estimate

    def size(self) -> int:
        return write_threads.size if connections["default"].vendor == "postgresql" else 1

    def take(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # a semaphore belongs to one loop (tests run several)
            self.loop, self.semaphore, self.waiting = loop, asyncio.Semaphore(self.size()), 0
        if self.semaphore.locked() and self.waiting >= settings.TRACE_OTLP_MAX_WAITING:
            raise Refused(503, "This server process has too many span batches waiting "
                               "(TRACE_OTLP_MAX_WAITING); nothing was stored, retry later.",
                          self.retry_after())
        return self.semaphore

    def retry_after(self) -> int:
        drain = (self.waiting + 1) * self.run_seconds / self.size()
        return int(min(60, max(1, math.ceil(drain))))

    def ran(self, seconds: float) -> None:
        self.run_seconds += (seconds - self.run_seconds) / 32


turns = Turns()


def _bearer_token(request) -> str:
    token = bearer_token(request)
    if token is None:
        raise Refused(401, "Send the project token as 'Authorization: Bearer <token>'.")
    return token


# Projects found by their token's digest, each kept PROJECT_TOKEN_CACHE_SECONDS, as tracking
# keeps them for its own endpoints.
found_projects = FoundByDigest(lambda: settings.PROJECT_TOKEN_CACHE_SECONDS)


def _check_project(token: str):
    """The project of a request-metrics API token, checked as tracking's
    ProjectTokenAuthentication checks it (tracking's Project, looked up through the app
    registry: traces does not import tracking)."""
    project = found_projects.get(token_digest(token), lambda digest: apps.get_model(
        "tracking", "Project").objects.filter(token_digest=digest).first())
    if project is None or not token_matches(token, project.token_digest):
        raise Refused(403, "Unknown or rotated project token.")
    return project


@receiver([post_save, post_delete], sender="tracking.Project")
def _forget_project(sender, instance, **kwargs):
    found_projects.forget(instance.pk)


def _media_type(request) -> str:
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def _body(request) -> bytes:
    """The uncompressed body, refused over TRACE_OTLP_MAX_BODY_BYTES (a gzip bomb too: the
    decompression stops one byte past the limit)."""
    limit = settings.TRACE_OTLP_MAX_BODY_BYTES
    encoding = request.headers.get("Content-Encoding", "")
    try:
        return compressed.inflated(request.body, compressed.gzipped(encoding), limit)
    except compressed.UnsupportedEncoding as error:
        raise Refused(415, f"Content-Encoding {str(error)!r} is not supported: gzip or "
                           "none.") from None
    except compressed.NotGzip:
        raise Refused(400, "The body is not valid gzip data.") from None
    except compressed.TooLarge:
        raise Refused(413, f"The body is larger than {limit} bytes uncompressed "
                           "(TRACE_OTLP_MAX_BODY_BYTES); send smaller batches.") from None


def _store(decoded: otel.Decoded, project) -> SpansResult:
    """The write: the spans stored, on the trace rows of `project` (tracking's Project)."""
    result = ingest_spans(decoded, project.public_id)
    # Stored: the other apps hear of the spans (tracking makes request metrics of the SERVER
    # spans among them). A receiver's failure is a 503: the exporter sends again.
    spans_stored.send(sender=__name__, project=project, spans=decoded.spans)
    return result


def _ingest_view(decode, answer, refusal, media_types, store=_store):
    """An async view of the lean path: decode(media type, body) -> otel.Decoded;
    answer(media type, Decoded) -> the success HttpResponse; refusal(media type, Refused) ->
    the error HttpResponse; store(Decoded, project) -> SpansResult, the write."""

    def work(request, media_type, token):
        started = time.monotonic()
        try:
            project = _check_project(token)
            decoded = decode(media_type, _body(request))
            result = store(decoded, project)
        except otel.InvalidData as error:
            return refusal(media_type, Refused(400, str(error)))
        except Refused as error:
            return refusal(media_type, error)
        except DatabaseError:
            return refusal(media_type, Refused(
                503, "The server could not store the spans; nothing was stored, retry later.",
                turns.retry_after()))
        finally:
            turns.ran(time.monotonic() - started)
        return answer(media_type, otel.Decoded(decoded.spans, result.rejected, result.message))

    def on_thread(request, media_type, token, loop):
        publisher.serve_on(loop)  # the live frames of the write go to the serving loop
        try:
            with kept_connection():
                return work(request, media_type, token)
        finally:
            publisher.serve_on(None)

    async def view(request):
        media_type = _media_type(request)
        try:
            if request.method != "POST":
                raise Refused(405, "Only POST is accepted here.")
            if media_type not in media_types:
                raise Refused(415, f"Content-Type must be one of {', '.join(media_types)}.")
            token = _bearer_token(request)
            if len(request.body) > settings.TRACE_OTLP_MAX_BODY_BYTES:
                _body(request)  # raises the 413 (a compressed body is at most as large)
        except Refused as error:
            return refusal(media_type, error)
        if called_from_sync_code() or connections["default"].in_atomic_block:
            # A test's client: its thread holds the connection and transaction to use.
            return await sync_to_async(work)(request, media_type, token)
        try:
            semaphore = turns.take()
        except Refused as error:
            return refusal(media_type, error)
        turns.waiting += 1
        try:
            await semaphore.acquire()
        finally:
            turns.waiting -= 1
        try:
            if connections["default"].vendor == "postgresql":
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(write_threads.executor, on_thread, request,
                                                  media_type, token, loop)
            return await sync_to_async(work)(request, media_type, token)
        finally:
            semaphore.release()

    return view


# --- OTLP/HTTP ----------------------------------------------------------------------------------

def _decode_otlp(media_type: str, body: bytes) -> otel.Decoded:
    if media_type == PROTOBUF:
        return otel.decode_otlp_protobuf(body)
    return otel.decode_otlp_json(body)


def _otlp_message(media_type: str, message, status: int, headers=None) -> HttpResponse:
    if media_type == PROTOBUF:
        return HttpResponse(message.SerializeToString(), status=status, content_type=PROTOBUF,
                            headers=headers)
    return HttpResponse(json_format.MessageToJson(message, indent=None), status=status,
                        content_type=JSON, headers=headers)


def _otlp_answer(media_type: str, decoded: otel.Decoded) -> HttpResponse:
    return _otlp_message(media_type, otel.otlp_response(decoded), 200)


def _otlp_refusal(media_type: str, error: Refused) -> HttpResponse:
    status = status_pb2.Status(code=GRPC_CODES.get(error.status, code_pb2.UNKNOWN),
                               message=error.message)
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    if error.status == 405:
        headers = {"Allow": "POST"}
    return _otlp_message(media_type if media_type == PROTOBUF else JSON, status, error.status,
                         headers)


otlp_traces = _ingest_view(_decode_otlp, _otlp_answer, _otlp_refusal, (PROTOBUF, JSON))


def _decoded_only(decoded: otel.Decoded, project) -> SpansResult:
    return SpansResult(len(decoded.spans), decoded.rejected, decoded.message)


# The benchmark's baseline (bench/otlp_ingest.py), mounted only with TRACE_BENCH_NOOP: the same
# view, token check, decompression and decoding, everything but the write.
otlp_decode_only = _ingest_view(_decode_otlp, _otlp_answer, _otlp_refusal, (PROTOBUF, JSON),
                                store=_decoded_only)


# --- Zipkin v2 ----------------------------------------------------------------------------------

def _zipkin_answer(media_type: str, decoded: otel.Decoded) -> HttpResponse:
    if decoded.rejected and not decoded.spans:
        return _zipkin_refusal(media_type, Refused(400, decoded.message))
    # Zipkin's answer has no body; refused spans are said in a header, for people debugging.
    headers = {"X-Rejected-Spans": str(decoded.rejected)} if decoded.rejected else None
    return HttpResponse(status=202, headers=headers)


def _zipkin_refusal(media_type: str, error: Refused) -> HttpResponse:
    codes = {400: "invalid", 401: "not_authenticated", 403: "permission_denied",
             405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type",
             503: "overloaded"}
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
    if error.status == 405:
        headers["Allow"] = "POST"
    return HttpResponse(json.dumps(error_body(error.message, codes.get(error.status, "error"))),
                        status=error.status, content_type=JSON, headers=headers)


zipkin_spans = _ingest_view(lambda media_type, body: otel.decode_zipkin(body), _zipkin_answer,
                            _zipkin_refusal, (JSON,))
