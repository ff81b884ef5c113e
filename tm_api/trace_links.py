"""Tests by trace id, for the pages of other apps (plumbing.trace_links): a trace or a request
made by a test (the pytest plugin runs each test in a trace of its own) links to that test's
run; and the trace links of a run page's tests."""

from django.urls import reverse

from plumbing import trace_links
from plumbing.trace_links import Link, finder
from tm_api.models import TestResult

# Links under one test on a run page: its trace and its first few requests.
LINKS_PER_TEST = 3


@finder("tests")
def tests_of(trace_ids: list[str], limit: int) -> dict[str, list[Link]]:
    rows = (TestResult.objects.filter(trace_id__in=trace_ids)
            .values_list("trace_id", "test__file_name", "test__file_path",
                         "test__master_scenario__run_id", "test__machine__machine_name")
            .order_by("trace_id", "-test__master_scenario__run_id")[:limit * len(trace_ids)])
    found: dict[str, list[Link]] = {}
    for trace_id, name, path, run_id, machine in rows:
        found.setdefault(trace_id, []).append(Link(
            "tests", f"{name} ({machine})", reverse("tm_api:run", args=[run_id]),
            f"The test {path}::{name}, in a run of {machine}"))
    return found


def attach_trace_links(tests) -> None:
    """Set `trace_links` on each of `tests` (Test rows with their result selected): the trace
    and the tracked requests carrying its trace id; one query per kind for them all."""
    trace_ids = {}
    for test in tests:
        try:
            trace_id = test.result.trace_id
        except TestResult.DoesNotExist:
            trace_id = None
        if trace_id:
            trace_ids[test.pk] = trace_id
    found = trace_links.find(trace_ids.values(), kinds=("trace", "requests"),
                             limit=LINKS_PER_TEST)
    for test in tests:
        test.trace_links = found.get(trace_ids.get(test.pk), [])
