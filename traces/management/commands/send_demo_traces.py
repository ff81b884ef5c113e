"""Fill an install with realistic traces through the same service the websocket uses."""

import random
import time
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max
from django.utils import timezone

from traces.assembly import OPEN
from traces.messages import parse_message
from traces.models import Trace
from traces.services import IngestError, ingest_messages

# The demo's traces are the ones whose TRACE_START group_id starts with this: what --reset
# deletes and --top-up counts, never a trace a program sent.
DEMO_GROUP_PREFIX = "demo-"
# Seconds between two demo traces on average (their starts are 20 to 90 s apart).
DEMO_SPACING_SECONDS = 55

ENDPOINTS = [
    ("GET /movies", "web", [("auth.check_session", "auth", 0.004), ("db.select movies", "db", 0.03),
                            ("cache.get posters", "cache", 0.002), ("render movies.html", "web", 0.02)]),
    ("GET /movies/<id>", "web", [("auth.check_session", "auth", 0.004),
                                 ("db.select movie", "db", 0.008),
                                 ("http GET ratings-api", "ratings", 0.12),
                                 ("render movie.html", "web", 0.015)]),
    ("POST /checkout", "shop", [("auth.check_session", "auth", 0.005),
                                ("db.begin", "db", 0.001), ("payments.charge", "payments", 0.4),
                                ("db.insert order", "db", 0.012), ("mail.enqueue receipt", "mail", 0.003)]),
    ("GET /search", "search", [("query.parse", "search", 0.001), ("index.lookup", "search", 0.05),
                               ("db.select movies", "db", 0.02)]),
]


class Command(BaseCommand):
    help = ("Store realistic demo traces (web requests with nested spans and events), one of them "
            "left open, through the ingest service; no server needs to run.")

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=20, help="traces to store (default 20)")
        parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable data")
        parser.add_argument("--top-up", action="store_true",
                            help="store only the traces of the time since the newest demo trace "
                                 "(one per minute or so, at most --count): what `demo` does")
        parser.add_argument("--reset", action="store_true",
                            help="delete the demo traces (not those of programs) first")

    def handle(self, *args, count, seed, top_up=False, reset=False, **options):
        if count < 1:
            raise CommandError("--count must be at least 1")
        rng = random.Random(seed)
        demo_traces = Trace.objects.filter(group_id__startswith=DEMO_GROUP_PREFIX)
        if reset:
            deleted = demo_traces.delete()[1].get("traces.Trace", 0)
            self.stdout.write(f"reset: deleted {deleted} demo traces")
        if top_up:
            newest = demo_traces.aggregate(newest=Max("created"))["newest"]
            if newest is not None:
                since = (timezone.now() - newest).total_seconds()
                count = min(count, int(since // DEMO_SPACING_SECONDS))
                if count == 0:
                    self.stdout.write(f"Demo traces are up to date (the newest is {since:.0f} s "
                                      "old); see /traces/")
                    return
        # One open trace at a time, as if its client were still sending.
        keep_one_open = not demo_traces.filter(status=OPEN).exists()
        first_id = (Trace.objects.aggregate(last=Max("id"))["last"] or 0) + 1
        now = time.time()
        for number in range(count):
            trace_id = first_id + number
            started = now - (count - number) * rng.uniform(20, 90)
            messages = self.request_trace(rng, started)
            leave_open = keep_one_open and number == count - 1
            if leave_open:  # the newest stays open, as if the client were still sending
                messages = [m for m in messages if m["type"] != "TRACE_END"]
            rng.shuffle(messages)  # any order works; show it
            middle = len(messages) // 2
            # ... but TRACE_END in the first frame could complete the trace before the second
            # frame (spans not started yet) arrives, which would then be refused.
            end = next((i for i, m in enumerate(messages) if m["type"] == "TRACE_END"), None)
            if end is not None and end < middle:
                messages.append(messages.pop(end))
            try:
                for frame in (messages[:middle], messages[middle:]):
                    result = ingest_messages(trace_id, [parse_message(m, i) for i, m in enumerate(frame)])
            except IngestError as error:
                raise CommandError(f"trace {trace_id}: {error}") from None
            self.stdout.write(f"trace {trace_id}: {result.status}, {len(messages)} messages")
        self.stdout.write(self.style.SUCCESS(
            f"Stored {count} demo traces ({first_id}..{first_id + count - 1}); see /traces/"
        ))

    def request_trace(self, rng, started):
        endpoint, service, steps = rng.choice(ENDPOINTS)
        group = lambda: str(uuid.UUID(int=rng.getrandbits(128)))
        trace_group = DEMO_GROUP_PREFIX + group()
        messages = [{"type": "TRACE_START", "timestamp": round(started, 6), "group_id": trace_group,
                     "service": service}]
        root = group()
        clock = started + rng.uniform(0.0005, 0.002)
        root_start = clock
        children = []
        for name, step_service, typical in steps:
            duration = typical * rng.lognormvariate(0, 0.5)
            span_id = group()
            children.append((span_id, name, step_service, clock, clock + duration))
            if name.startswith("db.") and rng.random() < 0.6:  # a query with its own steps
                inner = clock + duration * 0.1
                for part in ("plan", "execute", "fetch"):
                    length = duration * rng.uniform(0.1, 0.25)
                    children.append((group(), f"{name} · {part}", step_service, inner, inner + length))
                    inner += length
            if name.startswith("cache.") or rng.random() < 0.2:
                event = "cache miss" if rng.random() < 0.4 else "cache hit"
                messages.append({"type": "EVENT", "timestamp": round(clock + duration / 2, 6),
                                 "name": event})
            clock += duration + rng.uniform(0.0002, 0.003)
        root_end = clock
        children.insert(0, (root, endpoint, service, root_start, root_end))
        for span_id, name, step_service, start, end in children:
            messages.append({"type": "SPAN_START", "timestamp": round(start, 6), "group_id": span_id,
                             "name": name, "service": step_service})
            messages.append({"type": "SPAN_END", "timestamp": round(end, 6), "group_id": span_id})
        if rng.random() < 0.3:
            messages.append({"type": "EVENT", "timestamp": round(root_end, 6), "name": "response sent"})
        messages.append({"type": "TRACE_END", "timestamp": round(root_end + 0.0005, 6),
                         "group_id": trace_group})
        return messages
