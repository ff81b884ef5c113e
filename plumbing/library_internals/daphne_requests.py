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


def time_out_slow_headers(seconds: float) -> bool:
    """A request's line and headers must arrive within `seconds` of its first byte; otherwise
    408 and the connection is closed. True when the deadline is on (idempotent).

    Twisted's HTTPChannel has only an idle timeout, reset by every byte: a client that sends one
    header line every few seconds ("slowloris") kept its connection, and a server thread's worth
    of buffers, for as long as Twisted's header limits allowed (500 lines). This uses private
    state of twisted.web.http.HTTPChannel (its allHeadersReceived/allContentReceived hooks);
    plumbing/tests/test_library_internals.py fails loudly if Twisted changes them.
    """
    from twisted.internet import reactor
    from twisted.web import http

    channel = http.HTTPChannel
    if getattr(channel, "_header_deadline_seconds", None) is not None:
        channel._header_deadline_seconds = seconds
        return True
    for hook in ("dataReceived", "allHeadersReceived", "allContentReceived", "connectionLost"):
        if not callable(getattr(channel, hook, None)):
            logger.warning("twisted.web.http.HTTPChannel has no %s: slow request headers are "
                           "not timed out.", hook)
            return False
    originals = {hook: getattr(channel, hook) for hook in
                 ("dataReceived", "allHeadersReceived", "allContentReceived", "connectionLost")}

    def cancel(self):
        deadline = self.__dict__.pop("_header_deadline", None)
        if deadline is not None and deadline.active():
            deadline.cancel()

    def too_slow(self):
        self.__dict__.pop("_header_deadline", None)
        logger.info("%s: request headers not complete after %s s; closed with 408",
                    self.transport.getPeer(), channel._header_deadline_seconds)
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                             b"Content-Length: 0\r\n\r\n")
        self.transport.loseConnection()

    def dataReceived(self, data):
        if "_header_deadline" not in self.__dict__ and not self.__dict__.get("_reading_body"):
            self._header_deadline = reactor.callLater(channel._header_deadline_seconds,
                                                      too_slow, self)
        return originals["dataReceived"](self, data)

    def allHeadersReceived(self):
        cancel(self)
        self._reading_body = True
        return originals["allHeadersReceived"](self)

    def allContentReceived(self):
        self._reading_body = False
        return originals["allContentReceived"](self)

    def connectionLost(self, reason):
        cancel(self)
        return originals["connectionLost"](self, reason)

    for hook, function in (("dataReceived", dataReceived),
                           ("allHeadersReceived", allHeadersReceived),
                           ("allContentReceived", allContentReceived),
                           ("connectionLost", connectionLost)):
        setattr(channel, hook, functools.wraps(originals[hook])(function))
    channel._header_deadline_seconds = seconds
    return True
