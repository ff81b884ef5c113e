"""The services stored spans name (traces.models.Service), for the trace list's service picker
(`GET /api/traces/services/`).

Reading them from the spans was a scan of every span at each load of the list (no index on
`service`: one would cost every span insert a tenth more): seconds at ten million spans. Each
writer names here the services of the spans it stores: the OTLP and Zipkin path in the round
trip that makes its traces' rows (SQL below), the trace websocket path only for frames whose
messages name a service (an optional field there), in its transaction on threads and in a
statement of its own just before it on the event loop (a name stored for spans that then fail
is harmless: the picker offers it, and it finds nothing). An existing name costs an index
look-up (INSERT ... ON CONFLICT DO NOTHING).

On the event loop that statement was a round trip of its own for every batch that names a
service: half of a one-frame trace's round trips, a third of a two-frame one's. There the
names just committed are kept for RECENT_SECONDS per event loop (`not_stored_lately`,
`stored_lately`), and a batch naming only those sends no statement. Only committed names are
kept (the statement is a transaction of its own), so a rollback cannot leave the list wrong; a
name that the daily job forgets while a process still keeps it comes back with the first batch
naming it after RECENT_SECONDS.

Retention removes spans, not names: the daily `forget_unused_services` job forgets the names no
stored span or trace has any more (`forget_unused`), so the picker offers only services it can
find. It is a job of its own, not a step of `prune_old_data`, because it reads the spans (there
is no index on `service`, as said above), which at millions of spans costs far more than
dropping a day's partitions; once a day, at night, it may.
"""

import asyncio
import time
import weakref

from django.db.models import Exists, OuterRef

from traces.models import Service, Span, Trace

# PostgreSQL, the names as one text[] parameter.
INSERT = ('INSERT INTO "traces_service" ("name") SELECT DISTINCT "name" FROM unnest({}::text[]) '
          'AS n("name") WHERE "name" <> \'\' ON CONFLICT DO NOTHING')


def of_messages(frames) -> set[str]:
    """The services the messages of `frames` (lists of traces.messages.Message) name."""
    return {message.service for frame in frames for message in frame if message.service}


RECENT_SECONDS = 300.0
_RECENT_LIMIT = 10_000  # names kept per event loop; past it the list starts again

_recent = weakref.WeakKeyDictionary()  # event loop -> {name: when it was stored}


def not_stored_lately(names) -> list[str]:
    """The names (sorted, empty ones skipped) this event loop has not stored in the last
    RECENT_SECONDS."""
    recent = _recent.get(asyncio.get_running_loop(), {})
    now = time.monotonic()
    return sorted(name for name in set(names)
                  if name and (name not in recent or now - recent[name] >= RECENT_SECONDS))


def stored_lately(names) -> None:
    """`names` were just committed to the table by this event loop."""
    recent = _recent.setdefault(asyncio.get_running_loop(), {})
    if len(recent) > _RECENT_LIMIT:
        recent.clear()
    recent.update(dict.fromkeys(names, time.monotonic()))


def remember(names) -> None:
    """Store `names` (an iterable of service names; empty ones are skipped) on Django's
    connection, in its current transaction."""
    Service.objects.bulk_create([Service(name=name) for name in sorted(set(names)) if name],
                                ignore_conflicts=True)


def forget_unused() -> int:
    """Forget the names no stored span or trace has (one scan of the spans); how many. A name
    forgotten while a new span of it is being stored comes back with the next batch naming it."""
    deleted, _ = (Service.objects
                  .exclude(Exists(Span.objects.filter(service=OuterRef("name"))))
                  .exclude(Exists(Trace.objects.filter(service=OuterRef("name"))))
                  .delete())
    return deleted
