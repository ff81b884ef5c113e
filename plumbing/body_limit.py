"""The limit on a request's body: one over HTTP_MAX_BODY_BYTES is answered 413 before Django
parses it (docs/limits.md).

DRF's parsers read the request stream directly, so Django's own DATA_UPLOAD_MAX_MEMORY_SIZE never
applied to JSON bodies, and where it did (request.body) it answered a bare 400.
"""

import json

from django.conf import settings

from plumbing.asgi_scope import header
from plumbing.errors import API_PATH_PREFIXES, error_body


class BodySizeLimit:
    """413 for a request body over HTTP_MAX_BODY_BYTES, in the API's error shape.

    A Content-Length over the limit is answered before the body is read by the application; a
    body without one (chunked) is counted as it is read, and Django is told the client went
    away once it passes the limit. (Daphne has received the whole body by then, spooled to a
    temporary file: a proxy in front is what protects the network side.)"""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        limit = settings.HTTP_MAX_BODY_BYTES if scope["type"] == "http" else 0
        if not limit:
            return await self.app(scope, receive, send)
        length = header(scope, b"content-length")
        try:
            declared = int(length) if length is not None else None
        except ValueError:
            declared = None  # Django answers a malformed Content-Length itself
        if declared is not None:
            if declared > limit:
                await self.too_large(scope, send, limit)
                return
            # The server reads no more than the declared length: nothing to count.
            return await self.app(scope, receive, send)
        received = 0
        over = False

        async def counted_receive():
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request" and not over:
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counted_receive, send)
        if over:
            await self.too_large(scope, send, limit)

    @staticmethod
    async def too_large(scope, send, limit):
        detail = (f"Request body larger than {limit} bytes (HTTP_MAX_BODY_BYTES); "
                  "send less in one request.")
        if scope["path"].startswith(API_PATH_PREFIXES):
            body, content_type = json.dumps(error_body(detail, "too_large")).encode(), b"application/json"
        else:
            body, content_type = detail.encode(), b"text/plain; charset=utf-8"
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", content_type), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": body})
