from django.contrib import admin, messages

from plumbing.admin import ReceivedDataAdmin
from plumbing.tokens import new_token, token_digest, token_hint
from tm_api.auth import TOKEN_PREFIX
from tm_api.models import Machine, MachineToken, MasterScenario, Run, Scenario, Test


@admin.register(Machine)
class MachineAdmin(admin.ModelAdmin):
    list_display = ["machine_name", "status", "created"]
    search_fields = ["machine_name"]
    readonly_fields = ["last_run", "created"]


@admin.register(MachineToken)
class MachineTokenAdmin(admin.ModelAdmin):
    """Adding a token shows its secret once, in a message; only the digest is stored."""

    list_display = ["name", "machine", "hint", "created", "last_used"]
    list_filter = ["machine"]
    readonly_fields = ["hint", "created", "last_used"]
    fields = ["name", "machine", "hint", "created", "last_used"]
    autocomplete_fields = ["machine"]

    def save_model(self, request, obj, form, change):
        if not change:
            secret = new_token(TOKEN_PREFIX)
            obj.digest, obj.hint = token_digest(secret), token_hint(secret)
            super().save_model(request, obj, form, change)
            messages.warning(
                request,
                f"Token for {obj.name}: {secret} — copy it now, it is not shown again. "
                f"Machines send it as 'Authorization: Token {secret}'.",
            )
            return
        super().save_model(request, obj, form, change)


class ScenarioInline(admin.TabularInline):
    model = Scenario
    fields = ["position", "file_name", "status", "tests_count"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Run)
class RunAdmin(ReceivedDataAdmin, admin.ModelAdmin):
    deletable = True  # a run goes with its scenarios and tests

    list_display = ["machine", "timestamp", "received"]
    list_filter = ["machine"]
    date_hierarchy = "timestamp"


@admin.register(MasterScenario)
class MasterScenarioAdmin(ReceivedDataAdmin, admin.ModelAdmin):
    list_display = ["file_name", "run", "status", "tests_count"]
    list_filter = ["status"]
    inlines = [ScenarioInline]
    raw_id_fields = ["run"]


@admin.register(Test)
class TestAdmin(ReceivedDataAdmin, admin.ModelAdmin):
    list_display = ["file_name", "file_path", "status", "machine", "timestamp_start"]
    list_filter = ["status"]
    search_fields = ["file_name", "file_path"]
    raw_id_fields = ["scenario", "master_scenario", "machine"]
