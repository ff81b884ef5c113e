"""uvicorn's httptools protocol with a deadline on request headers (HTTP_HEADER_TIMEOUT_SECONDS).

uvicorn times out idle keep-alive connections only, and that timer is cancelled by every byte
received: a client that sends one header line every few seconds ("slowloris") keeps its
connection open as long as it likes (uvicorn has no header-read timeout: Kludex/uvicorn#157,
--timeout-request-start never landed). As daphne does here
(plumbing/library_internals/daphne_requests.py), a connection must deliver a request's line and
headers within HTTP_HEADER_TIMEOUT_SECONDS of being opened, or of that request's first byte on a
kept-alive connection; otherwise it is answered 408 and closed. Bodies are not timed: the body
of an accepted request is the application's to read (BodySizeLimit bounds its size).

It subclasses uvicorn's HttpToolsProtocol and uses its attributes loop, transport and client
and its hooks on_message_begin and on_headers_complete, none of which uvicorn documents;
plumbing/tests/test_library_internals.py fails, naming uvicorn and its pinned version, when they
change.

Run with `uvicorn --http plumbing.library_internals.uvicorn_protocol:HttpToolsProtocol`
(plumbing.serve does). plumbing/tests/test_daphne_requests.py runs the same tests against both
servers.
"""

import logging

from uvicorn.protocols.http import httptools_impl

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n"
                   b"content-length: 0\r\n\r\n")


DEFAULT_TIMEOUT_SECONDS = 20.0  # settings.py's default, for an application without the setting


def header_timeout_seconds() -> float:
    from django.conf import settings

    return getattr(settings, "HTTP_HEADER_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    header_deadline = None

    def _arm_header_deadline(self) -> None:
        if self.header_deadline is None:
            self.header_deadline = self.loop.call_later(header_timeout_seconds(), self._too_slow)

    def _cancel_header_deadline(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _too_slow(self) -> None:
        self.header_deadline = None
        if self.transport.is_closing():
            return
        logger.info("%s: request headers not complete after %s s; closed with 408",
                    self.client, header_timeout_seconds())
        self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)
