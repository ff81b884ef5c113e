"""Request bodies sent gzipped, inflated with a bound: a small gzip that would inflate to
gigabytes (a zip bomb) stops one byte past the limit instead of being read whole.

Each ingest route (tracking batches, OTLP and Zipkin spans, JUnit reports) answers these
refusals in its own protocol's shape; the rule itself is here once.
"""

import zlib


class NotGzip(ValueError):
    """The body says it is gzip and is not."""


class TooLarge(ValueError):
    """The body, once uncompressed, is over the limit."""


class UnsupportedEncoding(ValueError):
    """A Content-Encoding other than gzip or none."""


def inflated(body: bytes, gzipped: bool, limit: int) -> bytes:
    """`body` uncompressed (gunzipped when `gzipped`), at most `limit` bytes of it: TooLarge
    over the limit, NotGzip for a body that is not gzip."""
    if not gzipped:
        if len(body) > limit:
            raise TooLarge(f"larger than {limit:,} bytes")
        return body
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        raw = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise NotGzip(str(error)) from None
    if len(raw) > limit or inflater.unconsumed_tail:
        raise TooLarge(f"larger than {limit:,} bytes uncompressed")
    return raw


def gzipped(content_encoding: str) -> bool:
    """Whether a Content-Encoding header says gzip; UnsupportedEncoding for any other coding
    than none or identity."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return False
    if encoding in ("gzip", "x-gzip"):
        return True
    raise UnsupportedEncoding(encoding[:40])
