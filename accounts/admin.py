from django.contrib import admin, messages

from accounts.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Staff see every user's tokens and revoke them (a leaked one, say); tokens are made by
    their users (/account/tokens/) or by manage.py create_api_token, which show the secret."""

    list_display = ["name", "user", "prefix", "scope", "created", "last_used", "expires",
                    "revoked"]
    list_filter = ["scope", "revoked"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["user", "prefix", "scope", "created", "last_used", "revoked"]
    fields = ["name", "user", "prefix", "scope", "created", "last_used", "expires", "revoked"]
    actions = ["revoke_tokens"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request, queryset):
        for token in queryset.filter(revoked=None):
            token.revoke()
        messages.success(request, "Revoked; those tokens stop working at once.")
