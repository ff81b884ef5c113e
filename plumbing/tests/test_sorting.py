"""?sort= parsing: only the table's columns reach order_by(), the pk always breaks ties."""

import pytest
from django.db.models import F
from django.http import QueryDict

from plumbing.sorting import Sorting

pytestmark = pytest.mark.unit

SORTING = Sorting({"name": "machine_name", "started": "last_run__timestamp"}, default="name")


def test_a_column_sorts_both_ways_with_the_pk_last_in_the_same_direction():
    ascending = SORTING.parse("started")
    assert (ascending.column, ascending.descending, ascending.param) == ("started", False, "started")
    assert ascending.order_by == (F("last_run__timestamp").asc(nulls_last=True), "pk")
    descending = SORTING.parse("-started")
    assert descending.param == "-started"
    assert descending.order_by == (F("last_run__timestamp").desc(nulls_last=True), "-pk")


@pytest.mark.parametrize("value", [None, "", "-", "--name", "machine_name", "pk", "name;drop",
                                   "last_run__timestamp", ["name"], "NAME"])
def test_anything_else_is_no_sort_and_the_request_gets_the_default(value):
    assert SORTING.parse(value) is None
    query = QueryDict(mutable=True)
    if isinstance(value, str):
        query["sort"] = value
    assert SORTING.of(query) == SORTING.default
    assert SORTING.default.param == "name"


def test_the_default_must_be_a_column():
    with pytest.raises(ValueError, match="not one of"):
        Sorting({"name": "machine_name"}, default="-created")
