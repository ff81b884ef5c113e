from django.conf import settings
from django.core.management.base import BaseCommand

from tracking import services


class Command(BaseCommand):
    help = ("Delete raw request rows older than TRACKING_RAW_RETENTION_DAYS (rollups, and so the "
            "dashboard's history, are kept).")

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None,
                            help="Override the retention period (default: the setting).")

    def handle(self, *args, days, **options):
        days = settings.TRACKING_RAW_RETENTION_DAYS if days is None else days
        deleted = services.prune_raw_requests(days)
        self.stdout.write(f"Deleted {deleted} request(s) older than {days} day(s).")
