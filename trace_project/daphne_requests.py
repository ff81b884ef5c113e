"""Request bodies go to Django untouched, never parsed (or refused) by Twisted first.

daphne's WebRequest is a twisted.web.http.Request, which by default parses every POST body
whose Content-Type is multipart/form-data or application/x-www-form-urlencoded into
`request.args` before daphne sees the request. daphne never reads `args` (it hands the raw body
to the ASGI application), so that work is wasted memory and CPU on every form POST, and a
multipart body Twisted cannot parse is answered by Twisted itself with a bare
`HTTP/1.1 400 Bad Request` (no body, no Content-Type) and a closed connection: not our API's
error shape, and no log line. Found by the REST fuzzer (docs/fuzzing.md):
`POST /tracking/<id>` with `Content-Type: multipart/form-data; boundary=b` and body `--b--`.

Twisted 24.7+ takes `parsePOSTFormSubmission=False`; with it the request reaches Django, where
DRF's parsers (or Django's forms) answer a malformed body in our error shape.
"""

import functools
import inspect
import logging

logger = logging.getLogger(__name__)


def leave_request_bodies_to_django() -> bool:
    """Make daphne's requests skip Twisted's form parsing; True when it is off (idempotent)."""
    from daphne.http_protocol import WebRequest
    from twisted.web import http

    if getattr(WebRequest, "_form_parsing_off", False):
        return True
    if "parsePOSTFormSubmission" not in inspect.signature(http.Request.__init__).parameters:
        logger.warning("This Twisted cannot leave form bodies unparsed (needs 24.7 or later): "
                       "malformed multipart bodies get a bare 400 from Twisted.")
        return False
    original = WebRequest.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parsePOSTFormSubmission", False)
        original(self, *args, **kwargs)

    WebRequest.__init__ = __init__
    WebRequest._form_parsing_off = True
    return True
