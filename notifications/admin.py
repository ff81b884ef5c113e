from django import forms
from django.contrib import admin, messages

from notifications.models import Channel, Cooldown, Delivery, Job, Notification, Rule
from notifications.services import send_test_notification


class SecretInput(forms.PasswordInput):
    """Never renders the saved value: a saved webhook URL or key is a credential."""

    def __init__(self, **kwargs):
        super().__init__(render_value=False, **kwargs)


class ChannelForm(forms.ModelForm):
    rules = forms.MultipleChoiceField(
        choices=[choice for choice in Rule.choices if choice[0] != Rule.TEST],
        widget=forms.CheckboxSelectMultiple, required=False,
    )

    class Meta:
        model = Channel
        fields = ["name", "kind", "enabled", "url", "secret", "email_to", "rules", "machines",
                  "projects"]
        widgets = {"url": SecretInput(attrs={"size": 80}), "secret": SecretInput()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for name in ("url", "secret"):
                saved = getattr(self.instance, name)
                if saved:
                    self.fields[name].help_text = (
                        f"Saved: {Channel.shorten_secret(saved)} (leave empty to keep it). "
                        + self.fields[name].help_text
                    )

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk:
            for name in ("url", "secret"):
                if not cleaned.get(name):
                    cleaned[name] = getattr(self.instance, name)
                    setattr(self.instance, name, cleaned[name])
        return cleaned


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "enabled", "destination", "rule_list"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    actions = ["send_test"]

    @admin.display(description="destination")
    def destination(self, channel):
        return channel.email_to if channel.kind == Channel.Kind.EMAIL else Channel.shorten_secret(channel.url)

    @admin.display(description="rules")
    def rule_list(self, channel):
        return ", ".join(channel.rules)

    @admin.action(description="Send a test notification")
    def send_test(self, request, queryset):
        for channel in queryset:
            send_test_notification(channel, requested_by=request.user.get_username())
        self.message_user(request, f"Test notification queued for {queryset.count()} channel(s).",
                          messages.SUCCESS)


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    readonly_fields = ["channel", "state", "attempts", "next_attempt_at", "last_status_code",
                       "last_error", "delivered_at"]
    fields = readonly_fields


class RecordAdmin(admin.ModelAdmin):
    """Rows the service writes (what was notified, delivered, run): people look, never add."""

    def has_add_permission(self, request):
        return False


@admin.register(Notification)
class NotificationAdmin(RecordAdmin):
    list_display = ["title", "rule", "created_at"]
    list_filter = ["rule"]
    search_fields = ["title", "key"]
    date_hierarchy = "created_at"
    readonly_fields = ["rule", "key", "title", "text", "facts", "link", "created_at"]
    inlines = [DeliveryInline]


@admin.register(Delivery)
class DeliveryAdmin(RecordAdmin):
    list_display = ["notification", "channel", "state", "attempts", "next_attempt_at",
                    "last_status_code"]
    list_filter = ["state", "channel"]
    readonly_fields = [field.name for field in Delivery._meta.fields]


@admin.register(Job)
class JobAdmin(RecordAdmin):
    list_display = ["name", "last_outcome", "last_started_at", "last_finished_at", "runs",
                    "lease_until"]
    readonly_fields = [field.name for field in Job._meta.fields]


@admin.register(Cooldown)
class CooldownAdmin(admin.ModelAdmin):
    list_display = ["rule", "key", "last_raised_at"]
    list_filter = ["rule"]
    search_fields = ["key"]
