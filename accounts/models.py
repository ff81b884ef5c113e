from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from plumbing.tokens import new_token, token_digest

TOKEN_PREFIX = "pat_"
# What pages, the admin and commands show of a token: "pat_" and 8 random characters (48 of its
# 256 random bits), enough to tell a user's tokens apart and to name one to revoke.
SHOWN_CHARS = len(TOKEN_PREFIX) + 8


class ApiToken(models.Model):
    """A personal API token: a secret a user's script sends as `Authorization: Bearer <token>`
    and acts as that user with. Only the SHA-256 digest of the secret is stored; the secret is
    shown once, when the token is made."""

    READ, WRITE = "read", "write"
    SCOPES = [(READ, "read"), (WRITE, "read-write")]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="what it is for, e.g. 'CI quarantine job'")
    prefix = models.CharField(max_length=SHOWN_CHARS, db_index=True, editable=False,
                              help_text="the token's first characters, to tell it apart")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(max_length=5, choices=SCOPES, default=READ)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    expires = models.DateTimeField(null=True, blank=True, help_text="empty: never")
    revoked = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = "personal API token"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user, name: str, scope: str = READ,
              expires_in_days: int | None = None) -> tuple["ApiToken", str]:
        """A new token of `user`; the secret is returned once and only its digest is stored."""
        secret = new_token(TOKEN_PREFIX)
        expires = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        token = cls.objects.create(user=user, name=name, scope=scope, expires=expires,
                                   prefix=secret[:SHOWN_CHARS], digest=token_digest(secret))
        return token, secret

    def revoke(self) -> None:
        if self.revoked is None:
            self.revoked = timezone.now()
            ApiToken.objects.filter(pk=self.pk, revoked=None).update(revoked=self.revoked)

    @property
    def state(self) -> str:
        """"active", "expired" or "revoked"."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires <= timezone.now():
            return "expired"
        return "active"

    @property
    def writes(self) -> bool:
        return self.scope == self.WRITE
