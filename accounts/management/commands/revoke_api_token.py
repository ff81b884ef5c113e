from django.core.management.base import BaseCommand, CommandError

from accounts.models import SHOWN_CHARS, ApiToken
from plumbing.tokens import token_digest


class Command(BaseCommand):
    help = (
        "Revoke a personal API token, named by the prefix that /account/tokens/ and "
        "create_api_token show (e.g. pat_Ab12Cd34), or by the whole token. It stops working at "
        "once. --list: every token, with its prefix, user and state."
    )

    def add_arguments(self, parser):
        parser.add_argument("prefix", nargs="?", help="the token's shown prefix, or the token")
        parser.add_argument("--list", action="store_true", help="list tokens instead")

    def handle(self, *args, prefix, **options):
        if options["list"]:
            for token in ApiToken.objects.select_related("user"):
                self.stdout.write(f"{token.prefix}\t{token.user.get_username()}\t{token.name}\t"
                                  f"{token.scope}\t{token.state}")
            return
        if not prefix:
            raise CommandError("name the token's prefix (see --list)")
        given = prefix.strip().rstrip("…")
        shown = given[:SHOWN_CHARS]
        if len(shown) < SHOWN_CHARS:
            raise CommandError(f"a prefix has {SHOWN_CHARS} characters, like pat_Ab12Cd34")
        tokens = ApiToken.objects.select_related("user")
        if len(given) > SHOWN_CHARS:  # the whole token: exactly that one
            found = [*tokens.filter(digest=token_digest(given))]
        else:
            found = [*tokens.filter(prefix=shown)]
        if not found:
            raise CommandError(f"no token {shown}…")
        if len(found) > 1:
            raise CommandError(f"{len(found)} tokens start with {shown}; revoke them in the "
                               "admin (Accounts, personal API tokens)")
        token = found[0]
        if token.revoked is not None:
            self.stdout.write(f"{shown}… was already revoked")
            return
        token.revoke()
        self.stdout.write(f"revoked {shown}… '{token.name}' of {token.user.get_username()}")
