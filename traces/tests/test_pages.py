import re

import pytest

from traces.tests.helpers import README_EXAMPLE, span, trace_end, trace_start
from traces.tests.helpers import store_trace as store

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def public(settings):
    settings.DASHBOARDS_PUBLIC = True


def test_empty_list_says_how_to_send_traces(client):
    html = client.get("/traces/").content.decode()
    assert "No traces yet." in html and "send_demo_traces" in html


def test_list_shows_traces_with_human_durations_and_links(client):
    store(1, README_EXAMPLE)
    store(2, [trace_start(1700000000000), trace_end(1700000000250)])  # milliseconds
    html = client.get("/traces/").content.decode()
    assert 'href="/traces/1/"' in html and "movies_load" in html
    assert "8 s" in html and "250 ms" in html
    assert "badge status-complete" in html
    assert "2019-10-01 23:21:22" in html  # the example trace's start, read as Unix seconds


def test_list_filters_and_keeps_them_in_pagination(client):
    for trace_id in range(1, 31):
        store(trace_id, [trace_start(0), trace_end(trace_id), *span("s", f"op{trace_id % 2}", 0, 1)])
    html = client.get("/traces/?name=op1").content.decode()
    assert html.count('class="badge status-complete"') == 15
    html = client.get("/traces/?min_duration=26").content.decode()
    assert html.count('class="badge status-complete"') == 5
    html = client.get("/traces/").content.decode()
    assert "Page 1 of 2" in html and 'href="?page=2"' in html
    html = client.get("/traces/?status=complete").content.decode()
    assert 'href="?status=complete&page=2"' in html
    html = client.get("/traces/?name=nothing").content.decode()
    assert "No trace matches these filters." in html


def test_bad_filters_are_shown(client):
    html = client.get("/traces/?min_duration=x").content.decode()
    assert "errorlist" in html and "min_duration" in html


def test_trace_page_and_404(client):
    store(7, README_EXAMPLE[:3])
    html = client.get("/traces/7/").content.decode()
    assert "#7" in html and "waiting for" in html and "TRACE_END" in html
    assert 'data-live="/ws/traces/7/live/"' in html and 'data-open="true"' in html
    assert client.get("/traces/8/").status_code == 404


def test_pages_need_login_unless_public(client, settings):
    settings.DASHBOARDS_PUBLIC = False
    assert client.get("/traces/1/").status_code == 302


def _field(html, name):
    """The <label> around the filter field `name`: its input and its errors."""
    inside = r"(?:(?!</label>).)*"
    match = re.search(rf'<label class="field[^"]*">{inside}name="{name}"{inside}</label>', html,
                      re.S)
    assert match, f"no label around {name}"
    return match.group(0)


def _names_in_order(html):
    return re.findall(r'<td><a href="/traces/\d+/">([^<]*)</a></td>', html)


@pytest.mark.parametrize("query, field, message", [
    ("received_since=yesterday", "since", "Enter a valid date/time."),
    ("since=yesterday", "since", "Enter a valid date/time."),
    ("until=31.02.2026", "until", "Enter a valid date/time."),
    ("min_duration=x", "min_duration", "Enter a number."),
    ("max_duration=-1", "max_duration", "greater than or equal to 0"),
    ("min_duration=5&max_duration=2", "max_duration", "must not be less than min_duration"),
    ("status=sleeping", "status", "Select a valid choice."),
])
def test_an_invalid_filter_value_is_shown_beside_its_field_and_lists_nothing(client, query, field,
                                                                             message):
    store(1, README_EXAMPLE)
    response = client.get(f"/traces/?{query}")
    html = response.content.decode()
    assert response.status_code == 200
    label = _field(html, field)
    assert 'class="field invalid"' in label and 'aria-invalid="true"' in label
    assert 'class="errorlist' in label and message in label
    typed = query.split("&")[-1].split("=", 1)[1]
    if field != "status":
        assert f'value="{typed}"' in label  # what the person typed stays, to be corrected
        assert 'type="number"' not in label  # where a browser would show "x" as nothing
    assert "No traces shown" in html and 'role="alert"' in html
    assert "movies_load" not in html  # not the unfiltered list


def test_valid_filters_have_no_error_and_an_unknown_parameter_is_said_to_be_ignored(client):
    store(1, README_EXAMPLE)
    html = client.get("/traces/?received_since=2000-01-01T00:00&colour=red").content.decode()
    assert 'class="field invalid"' not in html and "No traces shown" not in html
    assert 'value="2000-01-01T00:00"' in _field(html, "since")
    assert "movies_load" in html
    assert "Not a filter of this list, ignored: colour" in html


def test_list_sorts_by_a_column_both_ways_with_pk_breaking_ties(client):
    for trace_id, name in ((1, "beta"), (2, "alpha"), (3, "gamma"), (4, "alpha")):
        store(trace_id, [trace_start(0), trace_end(trace_id), *span("s", name, 0, 1)])
    html = client.get("/traces/").content.decode()
    assert _names_in_order(html) == ["alpha", "gamma", "alpha", "beta"]
    html = client.get("/traces/?sort=name").content.decode()
    assert _names_in_order(html) == ["alpha", "alpha", "beta", "gamma"]
    assert re.findall(r'<td class="num"><a href="/traces/(\d+)/">', html)[:2] == ["2", "4"]
    html = client.get("/traces/?sort=-name").content.decode()
    assert _names_in_order(html) == ["gamma", "beta", "alpha", "alpha"]
    assert re.findall(r'<td class="num"><a href="/traces/(\d+)/">', html)[2:] == ["4", "2"]
    html = client.get("/traces/?sort=-duration").content.decode()
    assert re.findall(r'<td class="num"><a href="/traces/(\d+)/">', html) == ["4", "3", "2", "1"]


def test_sort_headers_toggle_show_an_arrow_and_keep_the_filters(client):
    store(1, README_EXAMPLE)
    html = client.get("/traces/?status=complete&sort=name&page=1").content.decode()
    name = re.search(r'<th class="" data-column="name" data-first="asc" aria-sort="ascending">'
                     r'<a class="sort active" href="\?([^"]*)"[^>]*>'
                     r'Name <span class="sort-arrow" aria-hidden="true">▲</span>', html)
    assert name and name.group(1) == "status=complete&amp;sort=-name"
    assert 'href="?status=complete&amp;sort=-spans"' in html  # counts: biggest first
    assert 'href="?status=complete&amp;sort=service"' in html
    html = client.get("/traces/?sort=-name").content.decode()
    assert 'aria-sort="descending"' in html and "▼" in html and 'href="?sort=name"' in html


def test_an_unknown_sort_keeps_the_default_order(client):
    for trace_id in (1, 2, 3):
        store(trace_id, [trace_start(0), trace_end(1), *span("s", f"t{trace_id}", 0, 1)])
    for sort in ("colour", "-", "name;drop", "-created", "__class__"):
        response = client.get(f"/traces/?sort={sort}")
        assert response.status_code == 200
        assert _names_in_order(response.content.decode()) == ["t3", "t2", "t1"]
        assert "▼" in response.content.decode()  # the default: newest received first


def test_pagination_keeps_the_sort(client):
    for trace_id in range(1, 31):
        store(trace_id, [trace_start(0), trace_end(trace_id), *span("s", f"op{trace_id:02}", 0, 1)])
    html = client.get("/traces/?sort=name").content.decode()
    assert 'href="?sort=name&page=2"' in html
    assert _names_in_order(html)[0] == "op01"
    assert _names_in_order(client.get("/traces/?sort=name&page=2").content.decode())[0] == "op26"


def test_an_open_trace_is_named_after_its_root_span(client):
    # The documented example's order: the child's SPAN_START comes before its parent's.
    store(9, README_EXAMPLE[:3])
    assert "movies_network_load" in client.get("/traces/9/").content.decode()
    store(9, README_EXAMPLE[3:6])  # the root's SPAN_START, the trace still open
    html = client.get("/traces/9/").content.decode()
    assert '<span id="trace-name">movies_load</span>' in html and 'data-open="true"' in html
    assert _names_in_order(client.get("/traces/").content.decode()) == ["movies_load"]
    store(9, README_EXAMPLE[6:])
    assert _names_in_order(client.get("/traces/").content.decode()) == ["movies_load"]


def test_the_scatter_plots_the_matching_traces_in_seconds(client):
    store(1, README_EXAMPLE)  # Unix seconds: plotted at its start
    store(2, [trace_start(1700000000000), trace_end(1700000000250)])  # milliseconds
    store(3, [trace_start(5), trace_end(7), *span("s", "relative", 5, 7)])  # its own clock
    store(4, [trace_start(0), *span("s", "open", 0, 1)])  # open: no duration, not plotted
    response = client.get("/traces/")
    points = {point["ref"]: point for point in response.context["points"]}
    assert set(points) == {"1", "2", "3"}
    assert points["2"]["seconds"] == 0.25 and points["2"]["duration"] == "250 ms"
    assert points["2"]["at"] == 1700000000000
    assert points["3"]["seconds"] == 2  # at its arrival: its clock is not Unix time
    from traces.models import Trace

    assert points["3"]["at"] == Trace.objects.get(pk=3).created.timestamp() * 1000
    assert 'id="trace-points"' in response.content.decode()
    filtered = client.get("/traces/?name=relative").context["points"]
    assert [point["ref"] for point in filtered] == ["3"]


def test_the_list_sorts_by_errors(client, settings):
    from traces.models import Trace

    for trace_id, errors in ((1, 0), (2, 3), (3, 1)):
        store(trace_id, [trace_start(0), trace_end(1), *span("s", f"t{trace_id}", 0, 1)])
        Trace.objects.filter(pk=trace_id).update(error_count=errors)
    html = client.get("/traces/?sort=-errors").content.decode()
    assert re.findall(r'<td class="num"><a href="/traces/(\d+)/">', html) == ["2", "3", "1"]
    assert html.count('class="has-error"') == 2
