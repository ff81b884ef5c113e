from django.contrib import admin, messages
from django.utils.html import format_html

from tracking import services
from tracking.models import Project


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "token_hint", "token_rotated_at", "dropped_by_clients"]
    search_fields = ["name", "public_id"]
    readonly_fields = ["public_id", "token_hint", "token_rotated_at", "created_at",
                       "dropped_by_clients"]
    actions = ["rotate_tokens"]

    def save_model(self, request, obj, form, change):
        if not change:
            token = obj.issue_token()
            super().save_model(request, obj, form, change)
            self._show_token(request, obj, token)
        else:
            super().save_model(request, obj, form, change)

    @admin.action(description="Rotate the token of the selected projects")
    def rotate_tokens(self, request, queryset):
        for project in queryset:
            self._show_token(request, project, services.rotate_token(project))

    def _show_token(self, request, project, token):
        # Shown once: only the digest is stored.
        self.message_user(
            request,
            format_html("{}: RA_PROJECT_ID=<code>{}</code> RA_PROJECT_TOKEN=<code>{}</code> "
                        "(copy it now, it is not shown again)",
                        project.name, project.public_id, token),
            messages.WARNING,
        )
