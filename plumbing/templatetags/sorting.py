"""{% sort_th sort "column" "Label" %}: a table header cell that sorts by its column.

A click sorts by the column (descending first with first="desc", for columns where the biggest or
newest is what a person looks for); a click on the active column reverses it. The link keeps every
other query parameter (filters, page size) and goes back to the first page, since the rows on
page 3 of the old order mean nothing in the new one.
"""

from django import template
from django.utils.html import format_html

register = template.Library()

ARROWS = {False: "▲", True: "▼"}


@register.simple_tag(takes_context=True)
def sort_th(context, sort, column, label, first="asc", cls=""):
    query = context["request"].GET.copy()
    query.pop("page", None)
    active = sort is not None and sort.column == column
    descending = (not sort.descending) if active else first == "desc"
    query["sort"] = ("-" if descending else "") + column
    # data-column and data-first let a page that sorts in place (the metrics page's script) do
    # what these links do without a reload.
    if not active:
        return format_html(
            '<th class="{}" data-column="{}" data-first="{}"><a class="sort" href="?{}" '
            'title="Sort by {}">{}</a></th>',
            cls, column, first, query.urlencode(), label.lower(), label)
    state = "descending" if sort.descending else "ascending"
    return format_html(
        '<th class="{}" data-column="{}" data-first="{}" aria-sort="{}"><a class="sort active" '
        'href="?{}" title="Sorted {}; click to reverse">{} <span class="sort-arrow" '
        'aria-hidden="true">{}</span></a></th>',
        cls, column, first, state, query.urlencode(), state, label, ARROWS[sort.descending])
