import logging

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from notifications.jobs import JOBS, run_job

logger = logging.getLogger(__name__)


def _run(name):
    close_old_connections()
    try:
        record = run_job(name)
        logger.info("job %s: %s %s", name, record.last_outcome, record.last_detail[:200])
    finally:
        close_old_connections()


class Command(BaseCommand):
    help = "Run every scheduled job on its schedule until stopped (docker-compose's scheduler)."

    def handle(self, *args, **options):
        scheduler = BlockingScheduler(timezone=settings.TIME_ZONE)
        for job in JOBS.values():
            scheduler.add_job(
                _run, CronTrigger.from_crontab(job.cron, timezone=settings.TIME_ZONE),
                args=[job.name], id=job.name, name=job.name, max_instances=1, coalesce=True,
                misfire_grace_time=300,
            )
            self.stdout.write(f"scheduled {job.name:24} {job.cron}")
        try:
            scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            scheduler.shutdown(wait=False)
