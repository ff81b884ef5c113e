"""What the OpenAPI schema says of idempotency keys: the `Idempotency-Key` header parameter of
the writes that take one, and the `Idempotent-Replayed` header on their 2xx answers
(SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from idempotency import KEY_HEADER, KEY_MAX, REPLAYED_HEADER

IDEMPOTENCY_KEY = OpenApiParameter(
    KEY_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description=(
        f"Optional, 1 to {KEY_MAX} printable ASCII characters chosen by the client "
        "(a UUID, say). A retry with the same key from the same caller (project token or machine "
        "token) answers the first answer again without storing anything twice."
    ),
    # Printable ASCII: space (0x20) to tilde (0x7E).
    pattern=f"^[ -~]{{1,{KEY_MAX}}}$",
)

# On the 2xx answers of operations that take an Idempotency-Key.
REPLAYED = {
    "schema": {"type": "string", "enum": ["true"]},
    "description": "Present when this is the first answer to this Idempotency-Key given again: "
                   "the request was not applied a second time.",
}


def document_replays(result, generator, request, public):
    """drf-spectacular postprocessing hook: every 2xx answer of an operation that takes an
    Idempotency-Key may be a replay, and says so with the Idempotent-Replayed header."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            if not any(parameter.get("name") == IDEMPOTENCY_KEY.name
                       and parameter.get("in") == "header"
                       for parameter in operation.get("parameters", [])):
                continue
            for code, response in operation.get("responses", {}).items():
                if code.startswith("2"):
                    response.setdefault("headers", {})[REPLAYED_HEADER] = REPLAYED
    return result
