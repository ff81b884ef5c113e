from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project package is an app for its own command only: `manage.py demo`, which runs
    every app's demo command in turn."""

    name = "trace_project"
    verbose_name = "Monitor"
