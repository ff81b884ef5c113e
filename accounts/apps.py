from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts: personal API tokens"

    def ready(self):
        from accounts import auth  # noqa: F401  (registers the token's OpenAPI security scheme)
