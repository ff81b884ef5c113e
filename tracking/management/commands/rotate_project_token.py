import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tracking import services
from tracking.models import Project


class Command(BaseCommand):
    help = ('Give a project a new token (the old one stops working at once); prints '
            '{"id": ..., "token": ...} on stdout.')

    def add_arguments(self, parser):
        parser.add_argument("project_id", help="The project's id (PROJECT_ID).")

    def handle(self, *args, project_id, **options):
        try:
            project = Project.objects.filter(public_id=project_id).first()
        except ValidationError:
            project = None
        if project is None:
            raise CommandError(f"No project with id {project_id!r}.")
        token = services.rotate_token(project)
        self.stdout.write(json.dumps({"id": str(project.public_id), "token": token}))
