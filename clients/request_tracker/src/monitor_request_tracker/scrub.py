"""Nothing secret leaves the host: credential headers and secret-looking values are removed in
the sender thread, before serialisation (the server scrubs again on arrival)."""

import re
from urllib.parse import parse_qsl, urlencode

# The server's rule (tracking/scrub.py), which this package cannot import: the server's tests
# check that both say the same (tracking/tests/test_scrub.py).
CREDENTIAL_HEADERS = frozenset(
    "cookie set-cookie authorization proxy-authorization www-authenticate".split())
SECRET_NAME = re.compile("|".join(
    "token key passw pwd secret session auth csrf xsrf signature credential cookie bearer".split()
), re.IGNORECASE)
SCRUBBED = "[scrubbed]"


def is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return lowered in CREDENTIAL_HEADERS or bool(SECRET_NAME.search(lowered))


def scrub_headers(headers: dict) -> dict:
    return {name: value for name, value in headers.items()
            if value is not None and not is_sensitive(name)}


def scrub_query(query: str) -> str:
    if not query or not SECRET_NAME.search(query):
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, SCRUBBED if SECRET_NAME.search(k) else v) for k, v in pairs])
