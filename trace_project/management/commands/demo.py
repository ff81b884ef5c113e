from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand

from plumbing.demo import check_server


def _flags(options, *names):
    return [f"--{name.replace('_', '-')}" for name in names if options[name]]


# Each app's own demo command, in this order (demo_machines may keep machines running until
# interrupted, so it comes last), with its options; an app without one is passed over.
APP_DEMOS = {
    "send_demo_traces": lambda o: ["--top-up", *_flags(o, "reset")],
    "demo_metrics": lambda o: _flags(o, "reset"),
    "demo_machines": lambda o: ["--url", o["url"], *(["--token", o["token"]] if o["token"] else []),
                                *_flags(o, "in_process", "once", "reset")],
}


class Command(BaseCommand):
    help = ("Fill every area with realistic data: traces, the request metrics of a 'Demo shop' "
            "project, then virtual test machines reporting to the server at --url until Ctrl-C. "
            "Safe to run again: the same project, token and machines, topped up with the time "
            "since the last run; --reset deletes the demo's own data first.")

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000",
                            help="the server the virtual machines report to; it must use this "
                                 "database (default %(default)s)")
        parser.add_argument("--token", help="machine token, when the server needs one (DEBUG off)")
        parser.add_argument("--in-process", action="store_true",
                            help="no server: the machines report through this process")
        parser.add_argument("--once", action="store_true",
                            help="one run per virtual machine, then exit")
        parser.add_argument("--reset", action="store_true",
                            help="delete the demo's traces, project and machines first (nothing "
                                 "else), then fill again")

    def handle(self, *args, **options):
        if not options["in_process"]:
            # Before anything is stored: a demo half done because no server runs helps nobody.
            check_server(options["url"])
        available = get_commands()
        try:
            for name, arguments in APP_DEMOS.items():
                if name in available:
                    self.stdout.write(self.style.MIGRATE_HEADING(f"== {name}"))
                    call_command(name, *arguments(options), stdout=self.stdout,
                                 stderr=self.stderr)
        except KeyboardInterrupt:  # Ctrl-C before the machines: what was stored is whole
            self.stdout.write("stopped")
