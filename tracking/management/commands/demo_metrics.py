import json
import math
import random
import time

from django.core.management.base import BaseCommand
from django.db.models import Max

from plumbing.tokens import derived_token, token_digest, token_hint
from tracking import services
from tracking.models import TOKEN_PREFIX, Project, RequestMetric
from tracking.wire import RequestEvent

DEMO_NAME = "Demo shop"
# view, method, path pattern, share of traffic, median ms, spread (lognormal sigma), 4xx, 5xx
VIEWS = [
    ("home", "GET", "/", 0.25, 18, 0.5, 0.00, 0.001),
    ("catalog:list", "GET", "/products/", 0.22, 45, 0.6, 0.00, 0.002),
    ("catalog:detail", "GET", "/products/{n}/", 0.20, 30, 0.5, 0.04, 0.002),
    ("search", "GET", "/search/", 0.10, 120, 0.8, 0.01, 0.01),
    ("cart:add", "POST", "/cart/items/", 0.08, 60, 0.5, 0.05, 0.005),
    ("checkout:pay", "POST", "/checkout/pay/", 0.03, 480, 0.7, 0.03, 0.06),
    ("api:orders", "GET", "/api/orders/", 0.10, 75, 0.9, 0.08, 0.01),
    ("", "GET", "/wp-login.php", 0.02, 3, 0.3, 1.0, 0.0),
]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4) Safari/604.1",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/125.0", "curl/8.5.0"]


class Command(BaseCommand):
    help = ("Create the 'Demo shop' project with realistic requests over the last hours, through "
            "the same ingest service as real trackers; run again, it tops the project up with the "
            "requests of the time since the last run (same project, same token); --reset starts "
            "over. Prints its id and token as JSON.")

    def add_arguments(self, parser):
        parser.add_argument("--requests", type=int, default=15_000,
                            help="requests over the whole window (default %(default)s)")
        parser.add_argument("--hours", type=float, default=6.0,
                            help="the window, ending now (default %(default)s)")
        parser.add_argument("--seed", type=int, default=None, help="Random seed (repeatable data).")
        parser.add_argument("--reset", action="store_true",
                            help="delete the demo project and all its requests first")

    def handle(self, *args, requests, hours, seed, reset=False, **options):
        rng = random.Random(seed)
        started = time.monotonic()
        # Derived from SECRET_KEY: every run finds the same project by it and prints the same
        # token, so a tracker pointed at the demo project keeps working.
        token = derived_token(TOKEN_PREFIX, "demo_metrics project")
        project = (Project.objects.filter(token_digest=token_digest(token)).first()
                   or Project.objects.filter(name=DEMO_NAME).first())
        if reset and project is not None:
            project.delete()
            self.stderr.write(f"reset: deleted the project {DEMO_NAME!r} and its requests")
            project = None
        if project is None:
            project = Project.objects.create(name=DEMO_NAME, token_digest=token_digest(token),
                                             token_hint=token_hint(token))
        elif not project.token_matches(token):
            # Made before tokens were derived: its token was shown once, and is kept.
            token = None
        now = time.time()
        span = hours * 3600
        newest = RequestMetric.objects.filter(project=project).aggregate(
            newest=Max("received_at"))["newest"]
        # Only the part of the window since the last run is filled again: same density, never
        # twice the requests.
        gap = min(span, max(0.0, now - newest.timestamp())) if newest else span
        requests = round(requests * gap / span) if span else 0
        weights = [v[3] for v in VIEWS]
        generated = []
        stored = 0
        for _ in range(requests):
            # Traffic grows towards now, with a slow wave, like a shop in its busy hours.
            while True:
                age = rng.random() * gap
                if rng.random() < 0.6 + 0.4 * math.sin(age / span * math.pi * 2) ** 2:
                    break
            view, method, path, _, median, sigma, client_rate, server_rate = rng.choices(
                VIEWS, weights)[0]
            incident = span * 0.3 < age < span * 0.33  # a short outage an hour or two ago
            roll = rng.random()
            if roll < server_rate * (15 if incident else 1):
                status = rng.choice([500, 502, 503])
            elif roll < server_rate + client_rate:
                status = rng.choice([400, 403, 404, 404, 404])
            else:
                status = rng.choice([200] * 9 + [302])
            duration = rng.lognormvariate(math.log(median * (3 if incident else 1)), sigma)
            generated.append(RequestEvent(
                timestamp=now - age, duration_ms=duration, method=method,
                path=path.format(n=rng.randint(1, 400)),
                query=rng.choice(["", "", "", "page=2", "q=shoes", "sort=price"]),
                view_name=view, status_code=status, session_id=f"{rng.getrandbits(64):016x}",
                user_agent=rng.choice(AGENTS), client_ip=f"198.51.100.{rng.randint(1, 254)}",
                response_size=int(rng.lognormvariate(8, 1)),
                headers={"Host": "shop.example", "Accept-Language": "en-GB,en;q=0.8"},
            ))
        # In time order, as trackers deliver them: each batch touches few rollup cells.
        generated.sort(key=lambda event: event.timestamp)
        for start in range(0, len(generated), 2500):
            stored += services.ingest_events(project, generated[start:start + 2500])
        window = (f"the last {hours:g} hours" if gap == span
                  else f"the {gap / 60:.0f} minutes since the last run" if gap >= 120
                  else f"the {gap:.0f} s since the last run")
        self.stderr.write(f"Stored {stored} requests over {window} in "
                          f"{time.monotonic() - started:.1f} s; dashboard: /metrics/"
                          f"{project.public_id}/")
        if token is None:
            self.stderr.write("The project's token was shown when it was created; "
                              "manage.py rotate_project_token gives it a new one.")
        self.stdout.write(json.dumps({"id": str(project.public_id), "token": token}))
