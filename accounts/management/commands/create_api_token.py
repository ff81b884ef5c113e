from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiToken


class Command(BaseCommand):
    help = (
        "Make a personal API token for USER and print it once (only its digest is stored). "
        "Scripts send it as 'Authorization: Bearer <token>' and act as USER. "
        "Revoke it with revoke_api_token PREFIX."
    )

    def add_arguments(self, parser):
        parser.add_argument("user", help="username of the account the token acts as")
        parser.add_argument("--name", required=True, help="what it is for, e.g. 'CI quarantine'")
        parser.add_argument("--scope", choices=[ApiToken.READ, ApiToken.WRITE],
                            default=ApiToken.READ,
                            help="read (default): GET only; write: also the API's writes")
        parser.add_argument("--expires", type=int, metavar="DAYS",
                            help="days until it stops working (default: never)")

    def handle(self, *args, user, name, scope, expires, **options):
        User = get_user_model()
        account = User._default_manager.filter(**{User.USERNAME_FIELD: user}).first()
        if account is None:
            raise CommandError(f"no user {user!r}")
        if not account.is_active:
            raise CommandError(f"user {user!r} is deactivated: its tokens would not work")
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("--name must have 1 to 100 characters")
        if expires is not None and not 1 <= expires <= 3650:
            raise CommandError("--expires takes 1 to 3650 days")
        token, secret = ApiToken.issue(account, name, scope, expires)
        until = f"until {token.expires:%Y-%m-%d %H:%M} UTC" if token.expires else "no expiry"
        self.stderr.write(f"{token.get_scope_display()} token {token.prefix}… '{token.name}' for "
                          f"{user} ({until}); it is not shown again:")
        self.stdout.write(secret)
