from django.core.management.base import CommandError

from tracking.management.credentials import CredentialsCommand
from tracking.models import Project


class Command(CredentialsCommand):
    help = ('Create a tracked project; prints one JSON object {"id": ..., "token": ...} on stdout '
            "(the token is shown only this once: put it in RA_PROJECT_TOKEN).")
    argument, argument_help = "name", "Name shown on the dashboard."

    def project_and_token(self, name):
        name = name.strip()
        if not name:
            raise CommandError("The project name may not be empty.")
        if len(name) > Project._meta.get_field("name").max_length:
            raise CommandError("The project name is longer than 200 characters.")
        return Project.create_with_token(name)
