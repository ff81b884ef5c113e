from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications and jobs"

    def ready(self):
        from notifications import signals  # noqa: F401  (connects the server-error rule)
