"""A queryset compiled to SQL once per database and run many times with other values.

Django compiles a queryset each time it runs. For the five-table lock query every machine report
runs (tm_api/services.py) that took ~0.9 ms of CPU per report, more than the rest of the
report's queries together (measured with PostgreSQL). CompiledQuery keeps the SQL and where each
value goes, and turns the row it reads into model instances as Django would (the compiler's
converters, then Model.from_db).

On PostgreSQL the statement is also prepared on each connection the first time it runs there,
and executed by name after: planning the five-table join took 0.6 ms of PostgreSQL's CPU, five
times its execution, at every report. Django turns psycopg's prepared statements off (its
`prepare_threshold` is None, for connection poolers in transaction mode; this project needs
session mode anyway, see the README); here a server-binding cursor asks for preparation
explicitly, and the connection's threshold is raised only from None to "never unasked", so
nothing else Django runs is prepared. psycopg keeps the names per connection, and forgets them
(DEALLOCATE ALL) when a transaction is rolled back; the next run prepares again.

It relies on parts of Django's SQL compiler that are not public API (`select`, `col_count`,
`get_converters`, `apply_converters`): plumbing/tests/test_library_internals.py checks them.
"""

import weakref
from collections.abc import Callable, Sequence
from typing import NamedTuple

import psycopg
from django.db import transaction

_ONLY_WHEN_ASKED = 2**31  # a prepare_threshold that no statement's count reaches


class _Statement(NamedTuple):
    query: bytes


class _PreparingCursor(psycopg.Cursor):
    """psycopg's server-binding cursor, each statement prepared on the connection (once)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        super().execute(query, params, prepare=True, binary=binary)
        # Where Django's query log (DEBUG, tests) reads a client-binding cursor's statement.
        self._query = _Statement(query.encode())
        return self


def _cursor(connection):
    """Django's cursor on `connection`, or on PostgreSQL a _PreparingCursor in Django's
    wrapper (errors translated, queries logged as Django's are)."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        raw.prepare_threshold = _ONLY_WHEN_ASKED
    return in_django_wrapper(connection, _PreparingCursor(raw))


def in_django_wrapper(connection, cursor):
    """A psycopg cursor of `connection` in Django's cursor wrapper, as connection.cursor() wraps
    its own (errors translated, execute wrappers run, queries logged when Django logs them)."""
    return (connection.make_debug_cursor(cursor) if connection.queries_logged
            else connection.make_cursor(cursor))


class CompiledQuery:
    """`build(*placeholders)` makes the queryset (at most one row), with each value to vary
    given as one of `placeholders` (unique strings); `first(values)` runs it with `values` in
    their place and returns one instance per model of `models` (in that order), or None."""

    def __init__(self, build: Callable, placeholders: Sequence[str], models: Sequence[type]):
        self.build = build
        self.placeholders = tuple(placeholders)
        self.models = tuple(models)
        self._compiled = {}  # database alias -> (query, sql, params, slots, columns, layout)
        # Django connection -> (compiler, converters): finding the converters walked every
        # column's field again on each run (~0.1 ms).
        self._converters = weakref.WeakKeyDictionary()

    def _compile(self, connection):
        query = self.build(*self.placeholders).query
        compiler = query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        slots = [self.placeholders.index(p) if p in self.placeholders else None for p in params]
        columns = [column for column, _, _ in compiler.select[:compiler.col_count]]
        # Where each model's attributes are in a row.
        layout = []
        for model in self.models:
            places = [n for n, column in enumerate(columns) if column.target.model is model]
            layout.append((model, [columns[n].target.attname for n in places], places))
        compiled = self._compiled[connection.alias] = (query, sql, params, slots, columns, layout)
        return compiled

    def first(self, values: Sequence):
        connection = transaction.get_connection()
        compiled = self._compiled.get(connection.alias) or self._compile(connection)
        query, sql, params, slots, columns, layout = compiled
        params = [p if slot is None else values[slot]
                  for p, slot in zip(params, slots, strict=True)]
        with _cursor(connection) as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        converting = self._converters.get(connection)
        if converting is None:
            compiler = connection.ops.compiler("SQLCompiler")(query, connection, connection.alias)
            converting = self._converters[connection] = (compiler,
                                                         compiler.get_converters(columns))
        compiler, converters = converting
        if converters:
            row = next(iter(compiler.apply_converters([row], converters)))
        return [model.from_db(connection.alias, names, [row[n] for n in places])
                for model, names, places in layout]
