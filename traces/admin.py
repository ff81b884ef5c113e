from django.contrib import admin

from plumbing.admin import ReceivedDataAdmin
from traces.models import Event, Span, Trace


class SpanInline(admin.TabularInline):
    model = Span
    fields = ["name", "service", "group_id", "start", "end"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    show_change_link = False
    classes = ["collapse"]

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("start", "id")


@admin.register(Trace)
class TraceAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "service", "status", "span_count", "event_count", "duration",
                    "created"]
    list_filter = ["status", "created"]
    search_fields = ["=id", "name", "service", "group_id", "spans__name"]
    readonly_fields = ["id", "status", "created", "updated", "completed", "start", "end",
                       "duration", "group_id", "end_group_id", "integer_timestamps", "name",
                       "service", "span_count", "event_count", "unfinished_span_count",
                       "problems", "project"]
    date_hierarchy = "created"
    inlines = [SpanInline]
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return queryset.distinct() if may_have_duplicates else queryset, False

    def has_add_permission(self, request):
        return False  # traces come in over the websocket, never typed in

    def get_inlines(self, request, obj):
        # A trace can hold 10,000 spans: a form that big is of no use; the trace page is.
        return [SpanInline] if obj is None or obj.span_count <= 200 else []


@admin.register(Span)
class SpanAdmin(ReceivedDataAdmin, admin.ModelAdmin):
    list_display = ["name", "service", "trace", "start", "end"]
    search_fields = ["name", "service", "group_id", "=trace__id"]
    list_select_related = ["trace"]
    raw_id_fields = ["trace"]
    show_full_result_count = False


@admin.register(Event)
class EventAdmin(ReceivedDataAdmin, admin.ModelAdmin):
    list_display = ["name", "trace", "timestamp"]
    search_fields = ["name", "=trace__id"]
    list_select_related = ["trace"]
    raw_id_fields = ["trace"]
    show_full_result_count = False
