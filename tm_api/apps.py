from django.apps import AppConfig


class TmApiConfig(AppConfig):
    name = "tm_api"
    verbose_name = "Test machines"
