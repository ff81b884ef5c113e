"""Keys past IDEMPOTENCY_KEY_HOURS go with the prune_old_data job (notifications.jobs)."""

from django.utils import timezone

import idempotency
from notifications.jobs import prunes


@prunes("idempotency keys", order=40)
def prune_keys() -> int:
    return idempotency.prune(timezone.now())
