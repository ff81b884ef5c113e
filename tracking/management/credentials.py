import json

from django.core.management.base import BaseCommand


class CredentialsCommand(BaseCommand):
    """A command that gives a project a token and prints {"id": ..., "token": ...} on stdout,
    the one line a tracked app's settings are filled from (PROJECT_ID, PROJECT_TOKEN)."""

    argument = ""  # the command's one argument
    argument_help = ""

    def add_arguments(self, parser):
        parser.add_argument(self.argument, help=self.argument_help)

    def handle(self, *args, **options):
        project, token = self.project_and_token(options[self.argument])
        self.stdout.write(json.dumps({"id": str(project.public_id), "token": token}))

    def project_and_token(self, value):
        raise NotImplementedError
