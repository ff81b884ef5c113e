"""The services stored spans name (traces.models.Service), for the trace list's service picker
(`GET /api/traces/services/`).

Reading them from the spans was a scan of every span at each load of the list (no index on
`service`: one would cost every span insert a tenth more): seconds at ten million spans. Each
writer names here the services of the spans it stores: the OTLP and Zipkin path in the round
trip that makes its traces' rows (SQL below), the trace websocket path only for frames whose
messages name a service (an optional field there), in its transaction on threads and in a
statement of its own just before it on the event loop (a name stored for spans that then fail
is harmless: the picker offers it, and it finds nothing). An existing name costs an index
look-up (INSERT ... ON CONFLICT DO NOTHING); no process keeps a list of its own, which a
rolled-back transaction could leave wrong.

Retention removes spans, not names: the daily `forget_unused_services` job forgets the names no
stored span or trace has any more (`forget_unused`), so the picker offers only services it can
find. It is a job of its own, not a step of `prune_old_data`, because it reads the spans (there
is no index on `service`, as said above), which at millions of spans costs far more than
dropping a day's partitions; once a day, at night, it may.
"""

from django.db.models import Exists, OuterRef

from traces.models import Service, Span, Trace

# PostgreSQL, the names as one text[] parameter.
INSERT = ('INSERT INTO "traces_service" ("name") SELECT DISTINCT "name" FROM unnest({}::text[]) '
          'AS n("name") WHERE "name" <> \'\' ON CONFLICT DO NOTHING')


def of_messages(frames) -> set[str]:
    """The services the messages of `frames` (lists of traces.messages.Message) name."""
    return {message.service for frame in frames for message in frame if message.service}


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
