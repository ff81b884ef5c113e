from django.core.management.base import BaseCommand, CommandError

from notifications.jobs import JOBS, run_job


class Command(BaseCommand):
    help = "Run one scheduled job now (safe beside a scheduled run: a held lease skips it)."

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="the job; --list shows them")
        parser.add_argument("--list", action="store_true", help="list the jobs and schedules")

    def handle(self, *args, name=None, list=False, **options):
        if list or not name:
            for job in JOBS.values():
                self.stdout.write(f"{job.name:24} {job.cron:14} {job.help}")
            return
        if name not in JOBS:
            raise CommandError(f"Unknown job {name!r}; known: {', '.join(sorted(JOBS))}")
        record = run_job(name)
        self.stdout.write(f"{name}: {record.last_outcome}: {record.last_detail}")
        if record.last_outcome == "failed":
            raise CommandError(f"{name} failed")
