from django.db import models


class IdempotentRequest(models.Model):
    """The answer to a write sent with an Idempotency-Key, stored in the write's transaction."""

    scope = models.CharField(max_length=100)  # whose key: "tm_api:<machine>", "tracking:<id>"
    key = models.CharField(max_length=64)
    # What the key was first used for: a repeat elsewhere or with another body is refused.
    endpoint = models.CharField(max_length=200, blank=True, default="")
    fingerprint = models.CharField(max_length=64, blank=True, default="")  # SHA-256 of the body
    status = models.PositiveSmallIntegerField()
    body = models.JSONField(null=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_unique_scope_key")
        ]

    def __str__(self):
        return f"{self.scope} {self.key} -> {self.status}"
