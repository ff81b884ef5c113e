"""?sort=<column> / ?sort=-<column> for the tables of the pages (and the requests API).

Each table names the columns a person may sort by and what each means in the database; anything
else in ?sort= is ignored (the table keeps its default order) rather than reaching order_by(),
where it would be a 500 or a way to sort by a field the page does not show. The primary key is
always the last key, so rows with equal values keep one order from page to page.
"""

from dataclasses import dataclass

from django.db.models import F


@dataclass(frozen=True)
class Sort:
    column: str  # as in ?sort=, without the minus
    descending: bool
    order_by: tuple  # arguments for QuerySet.order_by

    @property
    def param(self) -> str:
        return ("-" if self.descending else "") + self.column


class Sorting:
    """The sortable columns of one table.

    `columns` maps a column's name in ?sort= to the model field (or annotation) it sorts by;
    `default` is a ?sort= value from those columns. Missing values (an open trace's duration)
    come last whichever the direction, so the rows with a value are the ones seen first.
    """

    def __init__(self, columns: dict[str, str], default: str, tie_breaker: str = "pk"):
        self.columns = dict(columns)
        self.tie_breaker = tie_breaker
        self.default = self.parse(default)
        if self.default is None:
            raise ValueError(f"default sort {default!r} is not one of {sorted(columns)}")

    def parse(self, value) -> Sort | None:
        """The Sort named by a ?sort= value, None when it names no sortable column."""
        if not isinstance(value, str):
            return None
        value = value.strip()
        descending = value.startswith("-")
        column = value[1:] if descending else value
        field = self.columns.get(column)
        if field is None:
            return None
        expression = F(field).desc(nulls_last=True) if descending else F(field).asc(nulls_last=True)
        tie = f"-{self.tie_breaker}" if descending else self.tie_breaker
        return Sort(column, descending, (expression, tie))

    def of(self, params) -> Sort:
        """The Sort a request's query parameters ask for, or the default."""
        return self.parse(params.get("sort")) or self.default
