from django.apps import AppConfig


class TracesConfig(AppConfig):
    name = "traces"
    verbose_name = "Traces"

    def ready(self):
        from traces import trace_links  # noqa: F401 - registers the "trace" finder
