from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications and jobs"

    def ready(self):
        from notifications import signals  # noqa: F401  (connects the server-error rule)

        # Each app's scheduled jobs, and its parts of the shared ones, in its `jobs` module.
        autodiscover_modules("jobs")
