"""Idempotency keys: a retried write is answered again, not applied twice.

A client that did not get the answer to a write (the server was killed, the connection dropped, a
timeout) sends the same request again with the same `Idempotency-Key` header. The first answer is
stored in the same transaction as the write's effect, so both are stored or neither is:

- the retry of a write that was stored gets the stored answer again, with
  `Idempotent-Replayed: true`, and nothing is written twice;
- the retry of a write that was not stored (the server died before its commit) is applied now.

Two requests with one key at the same time: the second waits for the first's transaction
(PostgreSQL's unique index; SQLite takes one writer at a time) and then gets its answer.
Keys are scoped (a machine's, a project's), kept IDEMPOTENCY_KEY_HOURS and then pruned by the
prune_old_data job. Only answers of successful writes (2xx) are stored: an error changed nothing,
and the retry is simply run again.

A key belongs to one endpoint and one body: the same key sent to another endpoint, or with
another body, is a client bug (a reused or colliding key), answered 422 with nothing applied.
Replaying the first answer there would silently drop the second write.

    return idempotency.once(f"tracking:{project.pk}", request, payload, lambda: Response(...))
"""

import hashlib
import json
import re
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_MAX = 64
_KEY = re.compile(rf"[\x20-\x7e]{{1,{KEY_MAX}}}")  # printable ASCII (the schema says so too)


def key_of(request) -> str | None:
    """The request's Idempotency-Key, None if it has none; 400 (ValidationError) if malformed."""
    key = request.headers.get(KEY_HEADER)
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise ValidationError({KEY_HEADER: [
            f"Must be 1 to {KEY_MAX} printable ASCII characters (a UUID fits)."
        ]})
    return key


class KeyReused(APIException):
    status_code = 422
    default_code = "idempotency_key_reused"


def fingerprint(payload) -> str:
    """SHA-256 of a body: of its bytes as they are, or of a parsed body written out canonically
    (key order and spacing do not matter) by orjson, whose sorted output costs a sixth of the
    standard library's: a pytest session's dry run is 1.5 MB of JSON, 23-31 ms there against
    2-7 ms, on the path of the answer the session waits for. What orjson refuses (a lone
    surrogate, an integer past 64 bits, nesting past 254 levels) is written by the standard
    library, as every body was before (legacy_fingerprint)."""
    if isinstance(payload, bytes):
        return hashlib.sha256(payload).hexdigest()
    try:
        text = orjson.dumps(payload, default=str, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return legacy_fingerprint(payload)
    return hashlib.sha256(text).hexdigest()


def legacy_fingerprint(payload) -> str:
    """The fingerprint of a parsed body as the standard library writes it: every fingerprint
    before orjson's, which a retry sent across an upgrade must still match."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def once(scope: str, request, payload, write) -> Response:
    """`write()` (which returns a DRF Response) once per (scope, Idempotency-Key) of `request`;
    its 2xx answer again for every repeat to the same endpoint with the same `payload` (the
    body's bytes, or the parsed body), 422 for a repeat anywhere else. Without a key, simply
    `write()`."""
    from idempotency.models import IdempotentRequest

    key = key_of(request)
    if key is None:
        return write()
    endpoint, body_digest = request.path[:200], fingerprint(payload)
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotentRequest.objects.create(
                    scope=scope, key=key, status=0, endpoint=endpoint, fingerprint=body_digest)
        except IntegrityError:
            record = IdempotentRequest.objects.get(scope=scope, key=key)
            # Rows stored before keys were bound to an endpoint and a body have neither.
            if record.endpoint and record.endpoint != endpoint:
                raise KeyReused(f"This {KEY_HEADER} was already used for {record.endpoint}; "
                                "use a new key for each write.") from None
            if record.fingerprint and record.fingerprint != body_digest and (
                    isinstance(payload, bytes)
                    or record.fingerprint != legacy_fingerprint(payload)):
                raise KeyReused(f"This {KEY_HEADER} was already used with another body; a "
                                "retry must repeat the same body, a new write needs a new key."
                                ) from None
            return Response(record.body, status=record.status, headers={REPLAYED_HEADER: "true"})
        response = write()
        if 200 <= response.status_code < 300 and hasattr(response, "data"):
            record.status, record.body = response.status_code, response.data
            record.save(update_fields=["status", "body"])
        else:
            record.delete()  # nothing was written: a retry runs again
        return response


def prune(now=None) -> int:
    """Delete keys older than IDEMPOTENCY_KEY_HOURS; returns how many."""
    from idempotency.models import IdempotentRequest

    cutoff = (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    deleted, _ = IdempotentRequest.objects.filter(created__lt=cutoff).delete()
    return deleted
