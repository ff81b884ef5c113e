"""Tables partitioned by time on PostgreSQL (native declarative range partitioning), so that
retention drops whole partitions instead of deleting rows one by one.

- `partition_table(table, column)`: the migration operation that converts a plain table holding
  rows, without copying them: the old table becomes the partition of everything before the
  next partition boundary (its rows stay where they are), a DEFAULT partition catches any row
  no partition covers (an insert never fails for want of a partition), and the partitions of
  the next PARTITION_AHEAD_DAYS days are made. Reversible (the rows are copied back into a plain
  table). Nothing happens on SQLite: it keeps plain tables.
- `create_ahead()`: the partitions of the coming PARTITION_AHEAD_DAYS days for every table
  partitioned by a timestamp (found in PostgreSQL's catalog, so this module knows no app); run by
  the `create_partitions` job. Rows the DEFAULT partition holds for a range are moved into the
  partition made for it.
- `prune(table, column, cutoff)`: retention. Partitions wholly before the cutoff are detached
  (the table's exclusive lock held for that change of the catalog only) and then dropped; rows
  are deleted only in the partition that straddles the cutoff and in the DEFAULT one. On a plain
  table (SQLite) it deletes the rows, in batches. Its two parts, `drop_partitions_before()` and
  `delete_rows_before()`, may run at once on two connections (traces.jobs does).

Partitions cover PARTITION_DAYS days each, from midnight UTC (counted from 1970-01-01, so the
boundaries do not depend on when the table was converted).

PostgreSQL wants the partition key in every unique index of a partitioned table: the conversion
adds the column to the primary key and to each unique constraint or index (keeping their names,
so later migrations find them). Django keeps addressing rows by `id`, which the table's sequence
keeps unique. The column must be a `timestamp with time zone`.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection as default_connection
from django.db import migrations, transaction
from django.db.utils import OperationalError
from django.utils import timezone

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How long detaching old partitions waits for the table's exclusive lock (held for an instant;
# inserts queue behind a waiting DETACH, so it must not wait long), and how often it tries.
LOCK_TIMEOUT = "2s"
LOCK_ATTEMPTS = 3


@dataclass(frozen=True)
class Partition:
    name: str
    lower: datetime | None  # None: MINVALUE (the converted table's old rows)
    upper: datetime | None  # None: MAXVALUE
    default: bool = False
    estimated_rows: int = 0  # PostgreSQL's statistics (-1 when never analysed)


@dataclass(frozen=True)
class Pruned:
    rows_deleted: int  # counted exactly
    partitions_dropped: int
    rows_dropped: int  # in the dropped partitions, as PostgreSQL's statistics estimate them

    @property
    def rows(self) -> int:
        return self.rows_deleted + self.rows_dropped


# --- boundaries ---------------------------------------------------------------------------------

def _width() -> timedelta:
    return timedelta(days=max(1, settings.PARTITION_DAYS))


def boundary(moment: datetime) -> datetime:
    """The start of the partition range that holds `moment`."""
    width = _width()
    return EPOCH + ((moment - EPOCH) // width) * width


def partition_name(table: str, lower: datetime) -> str:
    if lower == lower.replace(hour=0, minute=0, second=0, microsecond=0):
        return f"{table}_p{lower:%Y%m%d}"
    return f"{table}_p{lower:%Y%m%d%H%M%S}"


def _literal(moment: datetime) -> str:
    return "'" + moment.astimezone(UTC).isoformat() + "'"


# --- reading the catalog ------------------------------------------------------------------------

_BOUND = re.compile(r"FOR VALUES FROM \((?P<lower>.+?)\) TO \((?P<upper>.+?)\)$")


def _bound(text: str) -> datetime | None:
    if text in ("MINVALUE", "MAXVALUE"):
        return None
    return datetime.fromisoformat(text.strip("'"))


def is_partitioned(table: str, connection=default_connection) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def partitions(table: str, connection=default_connection) -> list[Partition]:
    """The table's partitions, by range (the DEFAULT partition last)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass", [table])
        rows = cursor.fetchall()
    found = []
    for name, bound, estimate in rows:
        if bound == "DEFAULT":
            found.append(Partition(name, None, None, True, int(estimate)))
            continue
        match = _BOUND.match(bound)
        if match is None:
            raise ValueError(f"{name}: not a range partition of one column ({bound})")
        found.append(Partition(name, _bound(match["lower"]), _bound(match["upper"]),
                               False, int(estimate)))
    minimum = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda p: (p.default, p.lower or minimum))


def partitioned_tables(connection=default_connection) -> list[tuple[str, str]]:
    """(table, column) of every table of the current schema range-partitioned by one timestamp
    with time zone column."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, a.attname FROM pg_partitioned_table p "
            "JOIN pg_class c ON c.oid = p.partrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() "
            "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
            "WHERE p.partstrat = 'r' AND p.partnatts = 1 "
            "AND a.atttypid = 'timestamptz'::regtype AND NOT c.relispartition "
            "ORDER BY c.relname")
        return cursor.fetchall()


@dataclass(frozen=True)
class _Index:
    name: str
    definition: str  # CREATE [UNIQUE] INDEX name ON table ...
    unique: bool
    primary: bool
    constraint: str | None  # the PRIMARY KEY or UNIQUE constraint the index is, if any
    columns: list[str]  # empty for an index on expressions
    predicate: str | None


def _indexes(cursor, table: str) -> list[_Index]:
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid), x.indisunique, x.indisprimary, k.conname, "
        "  CASE WHEN 0 = ANY(x.indkey) THEN ARRAY[]::text[] ELSE ARRAY("
        "    SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY AS u(attnum, n) "
        "    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = u.attnum "
        "    ORDER BY u.n) END, "
        "  pg_get_expr(x.indpred, x.indrelid) "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "LEFT JOIN pg_constraint k ON k.conindid = x.indexrelid AND k.conrelid = x.indrelid "
        "  AND k.contype IN ('p', 'u') "
        "WHERE x.indrelid = %s::regclass ORDER BY i.relname", [table])
    return [_Index(*row) for row in cursor.fetchall()]


def _foreign_keys(cursor, table: str) -> list[tuple[str, str]]:
    cursor.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname", [table])
    return cursor.fetchall()


def _identity_columns(cursor, table: str) -> list[str]:
    cursor.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                   "AND attidentity <> '' AND NOT attisdropped", [table])
    return [row[0] for row in cursor.fetchall()]


def _next_value(cursor, table: str, column: str) -> int:
    """The value the column's sequence (identity or owned) would give next, never below
    max(column) + 1."""
    cursor.execute(f"SELECT pg_get_serial_sequence(%s, %s), max({_q(column)}) FROM {_q(table)}",
                   [table, column])
    sequence, highest = cursor.fetchone()
    following = (highest or 0) + 1
    if sequence:
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
        last, called = cursor.fetchone()
        following = max(following, last + 1 if called else last)
    return following


def _q(name: str) -> str:
    return default_connection.ops.quote_name(name)


def _short(name: str, suffix: str) -> str:
    return name[:63 - len(suffix)] + suffix


# --- converting a table -------------------------------------------------------------------------

def partition_table(table: str, column: str) -> migrations.RunPython:
    """The migration operation converting `table` to one partitioned by `column` on PostgreSQL
    (its rows kept); reversed, a plain table again with the same rows. Nothing on SQLite."""

    def forward(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            convert(table, column, schema_editor.connection)

    def backward(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            unpartition(table, column, schema_editor.connection)

    return migrations.RunPython(forward, backward, elidable=False)


def convert(table: str, column: str, connection=default_connection,
            now: datetime | None = None) -> None:
    """Makes `table` a table partitioned by range of `column`, keeping its rows in place."""
    now = now or timezone.now()
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {_q(table)} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"SELECT max({_q(column)}) FROM {_q(table)}")
        newest = cursor.fetchone()[0]
        upper = boundary(max(now, newest or now)) + _width()
        legacy = f"{table}_before_{upper:%Y%m%d}"
        indexes = _indexes(cursor, table)
        foreign_keys = _foreign_keys(cursor, table)
        identities = {name: _next_value(cursor, table, name)
                      for name in _identity_columns(cursor, table)}
        for index in indexes:
            if index.unique and not index.columns:
                raise ValueError(f"{table}: unique index {index.name} on expressions cannot "
                                 f"take the partition key {column}")

        # The old table: its unique indexes go (the partitioned table's, which include the
        # partition key, are built on it when it is attached), its other indexes are renamed (and
        # adopted by the partitioned table's equivalent ones), its foreign keys go (the
        # partitioned table's are cloned onto it), its identity becomes a plain column.
        cursor.execute(f"ALTER TABLE {_q(table)} RENAME TO {_q(legacy)}")
        for number, index in enumerate(indexes):
            if index.constraint:
                cursor.execute(f"ALTER TABLE {_q(legacy)} DROP CONSTRAINT {_q(index.constraint)}")
            elif index.unique:
                cursor.execute(f"DROP INDEX {_q(index.name)}")
            else:
                cursor.execute(f"ALTER INDEX {_q(index.name)} "
                               f"RENAME TO {_q(_short(legacy, f'_{number}'))}")
        for name, _ in foreign_keys:
            cursor.execute(f"ALTER TABLE {_q(legacy)} DROP CONSTRAINT {_q(name)}")
        for name in identities:
            cursor.execute(f"ALTER TABLE {_q(legacy)} ALTER COLUMN {_q(name)} DROP IDENTITY")

        cursor.execute(
            f"CREATE TABLE {_q(table)} (LIKE {_q(legacy)} INCLUDING DEFAULTS INCLUDING "
            f"CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE ({_q(column)})")
        for name, following in identities.items():
            # Identity columns cannot be on a partitioned table before PostgreSQL 17: a sequence
            # owned by the column (Django finds it, as it finds an identity's, to reset it).
            sequence = _short(table, f"_{name}_seq")
            cursor.execute(f"CREATE SEQUENCE {_q(sequence)} AS bigint "
                           f"OWNED BY {_q(table)}.{_q(name)}")
            cursor.execute("SELECT setval(%s, %s, false)", [sequence, following])
            cursor.execute(f"ALTER TABLE {_q(table)} ALTER COLUMN {_q(name)} "
                           f"SET DEFAULT nextval('{sequence}'::regclass)")
        for index in indexes:
            _create_index(cursor, table, index, add=column)
        for name, definition in foreign_keys:
            cursor.execute(f"ALTER TABLE {_q(table)} ADD CONSTRAINT {_q(name)} {definition}")

        cursor.execute(f"ALTER TABLE {_q(table)} ATTACH PARTITION {_q(legacy)} "
                       f"FOR VALUES FROM (MINVALUE) TO ({_literal(upper)})")
        cursor.execute(f"CREATE TABLE {_q(table + '_default')} PARTITION OF {_q(table)} DEFAULT")
    create_ahead(connection, now, tables=[table])


def _create_index(cursor, table: str, index: _Index, add: str | None = None,
                  remove: str | None = None) -> None:
    columns = list(index.columns)
    if add and add not in columns:
        columns.append(add)
    if remove and len(columns) > 1 and columns[-1] == remove:
        columns.pop()
    listed = ", ".join(_q(name) for name in columns)
    if index.primary:
        cursor.execute(f"ALTER TABLE {_q(table)} ADD CONSTRAINT {_q(index.constraint or index.name)} "
                       f"PRIMARY KEY ({listed})")
    elif index.constraint:
        cursor.execute(f"ALTER TABLE {_q(table)} ADD CONSTRAINT {_q(index.constraint)} "
                       f"UNIQUE ({listed})")
    elif index.unique:
        where = f" WHERE {index.predicate}" if index.predicate else ""
        cursor.execute(f"CREATE UNIQUE INDEX {_q(index.name)} ON {_q(table)} ({listed}){where}")
    else:
        # pg_get_indexdef's text names the table (schema-qualified), which has the same name.
        cursor.execute(index.definition)


def unpartition(table: str, column: str, connection=default_connection) -> None:
    """Makes the partitioned `table` a plain table again, with every row (copied)."""
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {_q(table)} IN ACCESS EXCLUSIVE MODE")
        indexes = _indexes(cursor, table)
        foreign_keys = _foreign_keys(cursor, table)
        cursor.execute(
            "SELECT a.attname FROM pg_attribute a JOIN pg_depend d ON d.refobjid = a.attrelid "
            "AND d.refobjsubid = a.attnum AND d.classid = 'pg_class'::regclass "
            "AND d.deptype = 'a' JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
            "WHERE a.attrelid = %s::regclass", [table])
        sequenced = [row[0] for row in cursor.fetchall()]
        old = _short(table, "_partitioned")
        cursor.execute(f"ALTER TABLE {_q(table)} RENAME TO {_q(old)}")
        for number, index in enumerate(indexes):
            if index.constraint:
                cursor.execute(f"ALTER TABLE {_q(old)} RENAME CONSTRAINT {_q(index.constraint)} "
                               f"TO {_q(_short(old, f'_{number}'))}")
            else:
                cursor.execute(f"ALTER INDEX {_q(index.name)} "
                               f"RENAME TO {_q(_short(old, f'_{number}'))}")
        cursor.execute(
            f"CREATE TABLE {_q(table)} (LIKE {_q(old)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            "INCLUDING STORAGE INCLUDING COMMENTS)")
        for name in sequenced:
            cursor.execute(f"ALTER TABLE {_q(table)} ALTER COLUMN {_q(name)} DROP DEFAULT")
        cursor.execute(f"INSERT INTO {_q(table)} SELECT * FROM {_q(old)}")
        for name in sequenced:
            following = _next_value(cursor, old, name)
            cursor.execute(f"ALTER TABLE {_q(table)} ALTER COLUMN {_q(name)} "
                           "ADD GENERATED BY DEFAULT AS IDENTITY")
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, %s), %s, false)",
                           [table, name, following])
        for index in indexes:
            _create_index(cursor, table, index, remove=column)
        for name, definition in foreign_keys:
            cursor.execute(f"ALTER TABLE {_q(table)} ADD CONSTRAINT {_q(name)} {definition}")
        cursor.execute(f"DROP TABLE {_q(old)} CASCADE")


# --- partitions ahead ---------------------------------------------------------------------------

def create_ahead(connection=default_connection, now: datetime | None = None,
                 tables: list[str] | None = None, days: int | None = None) -> list[str]:
    """Makes the partitions that cover today to PARTITION_AHEAD_DAYS (or `days`) days ahead, for
    every time-partitioned table (or the ones named); returns the names of those it made."""
    now = now or timezone.now()
    days = settings.PARTITION_AHEAD_DAYS if days is None else days
    made = []
    for table, column in partitioned_tables(connection):
        if tables is not None and table not in tables:
            continue
        first = boundary(now)
        last = boundary(now + timedelta(days=days))
        wanted, lower = [], first
        while lower <= last:
            wanted.append((lower, lower + _width()))
            lower += _width()
        existing = [p for p in partitions(table, connection) if not p.default]
        for lower, upper in wanted:
            for gap_lower, gap_upper in _gaps(lower, upper, existing):
                made.append(_create_partition(connection, table, column, gap_lower, gap_upper))
    return made


def _gaps(lower: datetime, upper: datetime, existing: list[Partition]):
    """The parts of [lower, upper) no existing partition covers."""
    floor = datetime.min.replace(tzinfo=UTC)
    ceiling = datetime.max.replace(tzinfo=UTC)
    covered = sorted((p.lower or floor, p.upper or ceiling) for p in existing)
    start = lower
    for covered_lower, covered_upper in covered:
        if covered_upper <= start or covered_lower >= upper:
            continue
        if covered_lower > start:
            yield start, covered_lower
        start = max(start, covered_upper)
        if start >= upper:
            return
    if start < upper:
        yield start, upper


def _create_partition(connection, table, column, lower, upper) -> str:
    """A new partition for [lower, upper): made apart, given the rows the DEFAULT partition
    holds for that range, then attached (attaching checks the DEFAULT partition holds none)."""
    name = partition_name(table, lower)
    default = table + "_default"
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {_q(name)} (LIKE {_q(table)} INCLUDING DEFAULTS "
                       "INCLUDING CONSTRAINTS INCLUDING STORAGE)")
        cursor.execute(f"ALTER TABLE {_q(name)} ADD CONSTRAINT {_q(_short(name, '_range'))} "
                       f"CHECK ({_q(column)} >= {_literal(lower)} AND {_q(column)} < "
                       f"{_literal(upper)})")
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [default])
        if cursor.fetchone()[0]:
            cursor.execute(
                f"WITH moved AS (DELETE FROM {_q(default)} WHERE {_q(column)} >= %s "
                f"AND {_q(column)} < %s RETURNING *) INSERT INTO {_q(name)} SELECT * FROM moved",
                [lower, upper])
        cursor.execute(f"ALTER TABLE {_q(table)} ATTACH PARTITION {_q(name)} "
                       f"FOR VALUES FROM ({_literal(lower)}) TO ({_literal(upper)})")
        # The CHECK spared attaching a scan of the new partition; the bound now says the same.
        cursor.execute(f"ALTER TABLE {_q(name)} DROP CONSTRAINT {_q(_short(name, '_range'))}")
    return name


# --- retention ----------------------------------------------------------------------------------

def prune(table: str, column: str, cutoff: datetime, connection=default_connection,
          batch_size: int = 50_000) -> Pruned:
    """Removes the rows whose `column` is before `cutoff`: partitions wholly before it are
    dropped, the rows of the partition straddling it and of the DEFAULT partition are deleted
    (in batches, each its own transaction). On a plain table, rows are deleted in batches."""
    if not is_partitioned(table, connection):
        return Pruned(_delete_rows(connection, table, column, cutoff, batch_size), 0, 0)
    deleted = delete_rows_before(table, column, cutoff, connection, batch_size)
    return Pruned(deleted, *drop_partitions_before(table, cutoff, connection))


def delete_rows_before(table: str, column: str, cutoff: datetime, connection=default_connection,
                       batch_size: int = 50_000) -> int:
    """prune()'s rows: those before `cutoff` in the partition straddling it and in the DEFAULT
    partition, deleted in batches; how many."""
    deleted = 0
    for partition in partitions(table, connection):
        if partition.default or partition.lower is None or partition.lower < cutoff:
            if partition.default or partition.upper is None or partition.upper > cutoff:
                deleted += _delete_rows(connection, partition.name, column, cutoff, batch_size)
    return deleted


def drop_partitions_before(table: str, cutoff: datetime,
                           connection=default_connection) -> tuple[int, int]:
    """prune()'s partitions: those wholly before `cutoff` detached and dropped (and any a
    stopped run left detached); (how many, their rows as PostgreSQL's statistics estimate)."""
    old = [partition for partition in partitions(table, connection)
           if not partition.default and partition.upper is not None and partition.upper <= cutoff]
    if old:
        _detach(connection, table, [partition.name for partition in old])
    _drop_detached(connection, table)
    return len(old), sum(max(0, partition.estimated_rows) for partition in old)


def _detach(connection, table: str, names: list[str]) -> None:
    """The partitions leave the table in one transaction, renamed `<name>_detached`: the table's
    exclusive lock is taken once, and held only for this change of the catalog. Removing their
    files (seconds for gigabytes) comes after, without the lock: inserts never wait on it."""
    for attempt in range(LOCK_ATTEMPTS):
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                for name in names:
                    cursor.execute(f"ALTER TABLE {_q(table)} DETACH PARTITION {_q(name)}")
                    cursor.execute(f"ALTER TABLE {_q(name)} RENAME TO {_q(_detached(name))}")
            return
        except OperationalError:  # lock_timeout: readers or writers held the table; again
            if attempt == LOCK_ATTEMPTS - 1:
                raise


# What partition_name() and convert() name a partition, as _detached() renames it.
_DETACHED_NAME = "_(p[0-9]{8}([0-9]{6})?|before_[0-9]{8})_detached$"


def _detached(name: str) -> str:
    return _short(name, "_detached")


def _drop_detached(connection, table: str) -> None:
    """Drops the partitions detached by this run, or by one that stopped before it could."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND NOT c.relispartition "
            "AND c.relname ~ %s", ["^" + re.escape(table) + _DETACHED_NAME])
        names = [row[0] for row in cursor.fetchall()]
        if names:
            cursor.execute(f"DROP TABLE {', '.join(_q(name) for name in names)}")


def _delete_rows(connection, table, column, cutoff, batch_size) -> int:
    deleted = 0
    while True:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"DELETE FROM {_q(table)} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {_q(table)} "
                    f"WHERE {_q(column)} < %s LIMIT %s))", [cutoff, batch_size])
            else:
                cursor.execute(
                    f"DELETE FROM {_q(table)} WHERE rowid IN (SELECT rowid FROM {_q(table)} "
                    f"WHERE {_q(column)} < %s LIMIT %s)",
                    [connection.ops.adapt_datetimefield_value(cutoff), batch_size])
            count = cursor.rowcount
        deleted += count
        if count < batch_size:
            return deleted
