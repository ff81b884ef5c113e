from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from tracking import services
from tracking.management.credentials import CredentialsCommand
from tracking.models import Project


class Command(CredentialsCommand):
    help = ('Give a project a new token (the old one stops working at once); prints '
            '{"id": ..., "token": ...} on stdout.')
    argument, argument_help = "project_id", "The project's id (PROJECT_ID)."

    def project_and_token(self, project_id):
        try:
            project = Project.objects.filter(public_id=project_id).first()
        except ValidationError:
            project = None
        if project is None:
            raise CommandError(f"No project with id {project_id!r}.")
        return project, services.rotate_token(project)
