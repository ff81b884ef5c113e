from django.apps import AppConfig


class TmApiConfig(AppConfig):
    name = "tm_api"
    verbose_name = "Test machines"

    def ready(self):
        from tm_api import trace_links  # noqa: F401 - registers the "tests" finder
