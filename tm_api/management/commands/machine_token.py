from django.core.management.base import BaseCommand, CommandError

from plumbing.times import exact
from tm_api.auth import issue_token
from tm_api.models import Machine, MachineToken, machine_key


class Command(BaseCommand):
    help = (
        "Manage the tokens test machines send as 'Authorization: Token <token>'. "
        "create NAME [--machine MACHINE]: prints a new token once (only its digest is stored); "
        "without --machine it is a team token, good for every machine. list: the tokens. "
        "revoke ID: deletes one."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="issue a token and print it once")
        create.add_argument("name", help="who holds it, e.g. 'lab rack 3' or 'team qa'")
        create.add_argument("--machine", help="machine name the token is limited to; the "
                                              "machine is created if it has not reported yet")
        sub.add_parser("list", help="list tokens (their hints, never the secrets)")
        revoke = sub.add_parser("revoke", help="delete a token by id")
        revoke.add_argument("id", type=int)

    def handle(self, *args, action, **options):
        if action == "create":
            machine = None
            if options["machine"]:
                machine = Machine.objects.filter(name_key=machine_key(options["machine"])).first()
                machine = machine or Machine.objects.create(machine_name=options["machine"])
            token, secret = issue_token(options["name"], machine)
            self.stderr.write(f"token {token.pk} for {token.name}"
                              f" ({'machine ' + machine.machine_name if machine else 'team'}):")
            self.stdout.write(secret)
        elif action == "list":
            for token in MachineToken.objects.select_related("machine"):
                scope = token.machine.machine_name if token.machine else "(team)"
                used = exact(token.last_used) if token.last_used else "never"
                self.stdout.write(f"{token.pk}\t{token.name}\t{scope}\t{token.hint}\tused {used}")
        elif action == "revoke":
            deleted, _ = MachineToken.objects.filter(pk=options["id"]).delete()
            if not deleted:
                raise CommandError(f"no token with id {options['id']}")
            self.stdout.write(f"revoked token {options['id']}")
