from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand

# Each app's own demo command, in this order (demo_machines may keep machines running until
# interrupted, so it comes last); an app without one is passed over.
APP_DEMOS = ["send_demo_traces", "demo_metrics", "demo_machines"]


class Command(BaseCommand):
    help = "Fill a fresh install with realistic data in every area (traces, machines, metrics)."

    def handle(self, *args, **options):
        available = get_commands()
        for name in APP_DEMOS:
            if name in available:
                self.stdout.write(self.style.MIGRATE_HEADING(f"== {name}"))
                call_command(name, stdout=self.stdout, stderr=self.stderr)
