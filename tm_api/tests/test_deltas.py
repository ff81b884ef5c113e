"""Merging and applying deltas of a run (tm_api/deltas.py): pure, no database."""

import copy

import pytest

from tm_api.deltas import LastRunPage, merge_run_frames

pytestmark = pytest.mark.unit


def run(version, scenarios, status="running", delta=True):
    return {"machine_data": {"id": 1, "machine_name": "m", "delta": delta,
                             "last_master_scenario": {"pk": 7, "status": status,
                                                      "version": version,
                                                      "scenarios": scenarios}}}


def scenario(pk, status, *tests):
    return {"pk": pk, "status": status, "tests": [{"pk": t, "status": s} for t, s in tests]}


WHOLE = run(1, [scenario(1, "waiting", (10, "waiting"), (11, "waiting")),
                scenario(2, "waiting", (20, "waiting"))], status="waiting", delta=False)


def statuses_of(frame):
    return {t["pk"]: t["status"] for s in frame["machine_data"]["last_master_scenario"]["scenarios"]
            for t in s["tests"]}


def test_deltas_merge_into_one_holding_each_test_as_of_the_later_change():
    first = run(2, [scenario(1, "running", (10, "running"))])
    second = run(3, [scenario(1, "running", (10, "passed"), (11, "running"))])
    third = run(4, [scenario(2, "running", (20, "running"))], status="running")
    merged = merge_run_frames(merge_run_frames(first, second), third)
    assert merged["machine_data"]["delta"] is True
    assert statuses_of(merged) == {10: "passed", 11: "running", 20: "running"}
    assert merged["machine_data"]["last_master_scenario"]["version"] == 4


def test_frames_merged_out_of_order_keep_the_later_state():
    older = run(2, [scenario(1, "running", (10, "running"))])
    newer = run(3, [scenario(1, "waiting", (10, "passed"))], status="waiting")
    merged = merge_run_frames(copy.deepcopy(newer), copy.deepcopy(older))
    assert statuses_of(merged) == {10: "passed"}
    assert merged["machine_data"]["last_master_scenario"]["status"] == "waiting"


def test_a_delta_merged_into_a_whole_run_gives_the_whole_run_as_it_is_now():
    merged = merge_run_frames(copy.deepcopy(WHOLE), run(2, [scenario(2, "running", (20, "running"))]))
    assert merged["machine_data"]["delta"] is False
    assert statuses_of(merged) == {10: "waiting", 11: "waiting", 20: "running"}
    newer_whole = run(5, [scenario(1, "passed", (10, "passed"))], delta=False)
    assert merge_run_frames(run(4, [scenario(1, "x", (10, "x"))]), newer_whole) == newer_whole


def test_a_page_ignores_news_older_than_what_it_shows():
    page = LastRunPage()
    assert page.apply(copy.deepcopy(WHOLE))
    assert page.apply(run(3, [scenario(1, "waiting", (10, "passed"))], status="waiting"))
    assert page.apply(run(2, [scenario(1, "running", (10, "running"), (11, "unknown"))]))
    assert statuses_of({"machine_data": page.body}) == {10: "passed", 11: "unknown", 20: "waiting"}
    assert page.body["last_master_scenario"]["status"] == "waiting"


def test_a_delta_of_another_run_asks_for_the_whole_run():
    page = LastRunPage()
    page.apply(copy.deepcopy(WHOLE))
    other = run(9, [])
    other["machine_data"]["last_master_scenario"]["pk"] = 8
    assert page.apply(other) is False
