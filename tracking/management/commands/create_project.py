import json

from django.core.management.base import BaseCommand, CommandError

from tracking.models import Project


class Command(BaseCommand):
    help = ('Create a tracked project; prints one JSON object {"id": ..., "token": ...} on stdout '
            "(the token is shown only this once: put it in RA_PROJECT_TOKEN).")

    def add_arguments(self, parser):
        parser.add_argument("name", help="Name shown on the dashboard.")

    def handle(self, *args, name, **options):
        name = name.strip()
        if not name:
            raise CommandError("The project name may not be empty.")
        if len(name) > Project._meta.get_field("name").max_length:
            raise CommandError("The project name is longer than 200 characters.")
        project, token = Project.create_with_token(name)
        self.stdout.write(json.dumps({"id": str(project.public_id), "token": token}))
