"""A batch of this project's tracker (`POST /api/tracking/ingest/`): its body, its envelope and
its events, stored with partial success.

    batch = read_batch(body, content_encoding, project)   # refuses the whole batch, or
    batch.all_rejected -> batch.refusal()                 # the 400 naming each bad event
    batch.answer(services.ingest_events(...))             # {accepted, rejected, rejected_events}

What refuses a whole batch raises the API's exceptions (answered in the error shape): a body too
large uncompressed 413, not gzip or not JSON 400, no events list 400, too many events 413, a
project_id of another project 403, a bad `dropped` 400. Each event is then parsed on its own
(tracking.wire): the good ones are stored, the others named in `rejected_events`.
"""

from dataclasses import dataclass, field

from django.conf import settings
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError

from plumbing import compressed, jsonio
from plumbing.errors import error_body
from tracking.wire import EventError, RequestEvent, parse_batch_event

MAX_DROPPED = 10**12  # events one batch may say its client dropped
MOST_REJECTED_LISTED = 100  # entries of rejected_events in an answer
MOST_ERRORS_LISTED = 50  # fields named in the 400 of a batch whose every event is bad


class TooLarge(APIException):
    status_code = 413
    default_code = "too_large"


def event_error(error: EventError, prefix=""):
    """(field, message) of an event that failed to parse, as answers name them."""
    name = f"{prefix}{error.field}" if error.field else prefix.rstrip(".") or "body"
    return name, f"{error.message[:1].upper()}{error.message[1:]}" if error.message else ""


@dataclass
class Batch:
    raw: bytes  # the uncompressed body: what identifies a retried batch (idempotency keys)
    dropped: int
    events: list[RequestEvent] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # {"index", "field", "message"}
    size: int = 0

    @property
    def all_rejected(self) -> bool:
        return bool(self.size) and not self.events

    def answer(self, accepted: int) -> dict:
        return {"accepted": accepted, "rejected": len(self.rejected),
                "rejected_events": self.rejected[:MOST_REJECTED_LISTED]}

    def refusal(self) -> dict:
        """The 400 of a batch none of whose events could be stored."""
        first = self.rejected[0]
        errors = {f"events[{r['index']}].{r['field']}": [r["message"]]
                  for r in self.rejected[:MOST_ERRORS_LISTED]}
        field_name = f"events[{first['index']}].{first['field']}"
        return {**error_body(f"{field_name}: {first['message']}", "invalid", errors),
                **self.answer(0)}


def read_body(body: bytes, content_encoding: str) -> tuple[bytes, object]:
    """(the batch's uncompressed bytes, its JSON), gunzipped with a bound on the uncompressed
    size (no zip bombs)."""
    limit = settings.TRACKING_MAX_BATCH_BYTES
    try:
        raw = compressed.inflated(body, compressed.gzipped(content_encoding), limit)
    except compressed.UnsupportedEncoding:
        raise ValidationError({"Content-Encoding": ["Only gzip (or none) is accepted."]}) from None
    except compressed.NotGzip:
        raise ValidationError({"body": ["Not valid gzip data."]}) from None
    except compressed.TooLarge:
        raise TooLarge(f"Batch larger than {limit} bytes uncompressed; "
                       "send smaller batches.") from None
    try:
        return raw, jsonio.loads(raw)
    except jsonio.JSONInputError as error:
        raise ValidationError({"body": [f"Not valid JSON: {error}."]}) from None


def read_batch(body: bytes, content_encoding: str, project) -> Batch:
    """The batch `project`'s tracker sent, its envelope checked and its events sorted into those
    to store and those rejected."""
    raw, data = read_body(body, content_encoding)
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise ValidationError({"events": ["Required: a list of events."]})
    items = data["events"]
    if len(items) > settings.TRACKING_MAX_BATCH_EVENTS:
        raise TooLarge(f"More than {settings.TRACKING_MAX_BATCH_EVENTS} events in one batch.")
    claimed = data.get("project_id")
    if claimed not in (None, "") and str(claimed) != str(project.public_id):
        raise PermissionDenied("project_id does not belong to this token.")
    dropped = data.get("dropped") or 0
    # Bounded so that the project's running total stays within its BIGINT column.
    if isinstance(dropped, bool) or not isinstance(dropped, int) or not 0 <= dropped <= MAX_DROPPED:
        raise ValidationError({"dropped": [f"Must be an integer from 0 to {MAX_DROPPED}."]})
    batch = Batch(raw=raw, dropped=dropped, size=len(items))
    for index, item in enumerate(items):
        try:
            batch.events.append(parse_batch_event(item))
        except EventError as error:
            name, message = event_error(error)
            batch.rejected.append({"index": index, "field": name, "message": message})
    return batch
