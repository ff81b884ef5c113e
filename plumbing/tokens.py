"""Secrets handed to machines and tracked projects.

Only a SHA-256 digest is stored. The tokens are 256-bit random strings, so a fast digest is
enough (no password stretching needed) and lets the database look a token up by its digest;
comparisons of digests use hmac.compare_digest.
"""

import hashlib
import hmac
import secrets
import time
import weakref


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def derived_token(prefix: str, purpose: str) -> str:
    """A token this install gives again whenever asked for the same purpose: a keyed digest of
    SECRET_KEY, as secret as the key and as random as new_token's. The demo commands use it so
    that running them again keeps the demo's tokens instead of rotating them."""
    import base64

    from django.utils.crypto import salted_hmac

    # The salt keeps the module's first name, so that installs keep the tokens they gave out.
    digest = salted_hmac("trace_project.tokens.derived_token", purpose,
                         algorithm="sha256").digest()
    return prefix + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_digest(token: str) -> str:
    # surrogatepass: a token from a JSON body may hold a lone surrogate ("\ud800"); it matches
    # nothing, but must not fail to hash. Well-formed text hashes as plain UTF-8.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str, digest: str) -> bool:
    return hmac.compare_digest(token_digest(token), digest)


def bearer_token(request) -> str | None:
    """The token of the request's `Authorization: Bearer <token>` header, None without one (no
    lookup: the lean ingest path asks it on the event loop)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_hint(token: str) -> str:
    """What admin pages show of a token after it was handed out once."""
    return token[:6] + "…" if len(token) > 6 else "…"


class FoundByDigest:
    """Rows found by their token's digest (machine tokens, projects), each kept `seconds()`
    seconds by this process: looking a token up (an ORM query compiled anew each time) was most
    of an ingest request's own work. A row saved or deleted in this process is forgotten at
    once (`forget`, from its model's post_save/post_delete); in other server processes within
    that many seconds. Unknown tokens are never kept, so only real tokens fill it."""

    MOST = 10_000
    every: "weakref.WeakSet[FoundByDigest]" = weakref.WeakSet()

    def __init__(self, seconds):
        self.seconds = seconds  # () -> the setting's seconds; 0: no row is kept
        self.found: dict = {}  # digest -> (monotonic time it expires, row)
        self.clock = time.monotonic
        FoundByDigest.every.add(self)

    @classmethod
    def forget_all(cls) -> None:
        """Every cache forgets every row (tests: their rows vanish without signals)."""
        for cache in list(cls.every):
            cache.found.clear()

    def get(self, digest: str, lookup):
        """The row of `digest`: kept, or lookup(digest) (None: no such token)."""
        now = self.clock()
        hit = self.found.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = lookup(digest)
        keep = self.seconds()
        if row is not None and keep > 0:
            if len(self.found) >= self.MOST:
                self.found.clear()
            self.found[digest] = (now + keep, row)
        else:
            self.found.pop(digest, None)
        return row

    def forget(self, pk) -> None:
        """Forget the row `pk` under whatever digest it was found (a project's token rotated
        changes the digest of the same row)."""
        for digest, (_, row) in list(self.found.items()):
            if row.pk == pk:
                self.found.pop(digest, None)
