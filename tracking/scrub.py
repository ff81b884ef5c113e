"""What of a tracked request may be stored: credential headers and secret-looking values never are.

Applied by the ingest service to every wire format (the legacy tracker's CGI-style `HTTP_COOKIE`
names as well as plain `Cookie`), whatever the client already scrubbed. No Django import.
"""

import functools
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

# Always dropped, whatever their value.
CREDENTIAL_HEADERS = frozenset(
    {"cookie", "set-cookie", "authorization", "proxy-authorization", "www-authenticate"}
)
# Any header or query parameter whose name contains one of these looks like a secret.
SECRET_NAME = re.compile(
    r"token|key|passw|pwd|secret|session|auth|csrf|xsrf|signature|credential|cookie|bearer",
    re.IGNORECASE,
)
SCRUBBED = "[scrubbed]"
MAX_HEADERS = 40
MAX_HEADER_VALUE = 512


@functools.lru_cache(maxsize=1024)  # header names repeat in every request
def header_name(raw: str) -> str:
    """'HTTP_X_REQUEST_ID' / 'CONTENT_TYPE' / 'x-request-id' -> 'X-Request-Id'."""
    name = raw[5:] if raw.upper().startswith("HTTP_") else raw
    return "-".join(part.capitalize() for part in name.replace("_", "-").split("-"))


@functools.lru_cache(maxsize=1024)
def is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return lowered in CREDENTIAL_HEADERS or bool(SECRET_NAME.search(lowered))


def scrub_headers(headers: Mapping) -> dict[str, str]:
    """Headers safe to store: names normalised, credentials and secret-looking ones dropped,
    values cut to a bounded size."""
    kept: dict[str, str] = {}
    for raw_name, value in headers.items():
        if not isinstance(raw_name, str) or len(kept) >= MAX_HEADERS:
            continue
        name = header_name(raw_name)
        if is_sensitive(name) or not isinstance(value, (str, int, float)):
            continue
        kept[name] = str(value)[:MAX_HEADER_VALUE]
    return kept


def scrub_query(query: str) -> str:
    """Replace the values of query parameters named like secrets (?token=..., ?api_key=...)."""
    if not query or not SECRET_NAME.search(query):
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, SCRUBBED if SECRET_NAME.search(k) else v) for k, v in pairs])
