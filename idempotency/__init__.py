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

    key = idempotency.key_of(request)           # None without the header; 400 if malformed
    return idempotency.once(f"tracking:{project.pk}", key, lambda: Response(...))
"""

import re
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError
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


def once(scope: str, key: str | None, write) -> Response:
    """`write()` (which returns a DRF Response) once per (scope, key); its 2xx answer again for
    every repeat. Without a key, simply `write()`."""
    from idempotency.models import IdempotentRequest

    if key is None:
        return write()
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotentRequest.objects.create(scope=scope, key=key, status=0)
        except IntegrityError:
            record = IdempotentRequest.objects.get(scope=scope, key=key)
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
