"""Two runs compared (tm_api/compare.py)."""

import pytest

from tm_api import compare as C

pytestmark = pytest.mark.unit


def side(key, status, duration=1.0, test=0):
    return C.Side(key, "tests/t.py", key, test, status, "", duration)


def test_each_category():
    base = [side("a", "passed"), side("b", "failed"), side("c", "failed"), side("d", "passed"),
            side("gone", "passed"), side("e", "error")]
    head = [side("a", "failed"), side("b", "passed"), side("c", "error"), side("d", "passed"),
            side("fresh", "failed"), side("e", "warning")]
    found = C.compare(base, head)
    names = {name: [p.key for p in pairs] for name, pairs in found.items()}
    assert names["newly_failing"] == ["a"]
    assert names["fixed"] == ["b"]  # e: an error now skipped is not fixed
    assert names["still_failing"] == ["c"]
    assert names["new"] == ["fresh"] and names["removed"] == ["gone"]
    assert found["new"][0].base is None and found["removed"][0].head is None


def test_duration_changes_biggest_first_either_way_and_bounded():
    base = [side(f"t{n}", "passed", 1.0) for n in range(30)] + [side("none", "passed", None)]
    head = [side(f"t{n}", "passed", 1.0 + (n if n % 2 else -n / 100)) for n in range(30)]
    head.append(side("none", "passed", 5.0))
    changes = C.compare(base, head)["duration_changes"]
    assert len(changes) == C.DURATION_CHANGES
    assert changes[0].key == "t29" and changes[0].change == pytest.approx(29.0)
    assert all(abs(a.change) >= abs(b.change) for a, b in zip(changes, changes[1:]))
    assert "none" not in [p.key for p in changes]  # no duration in the base
    slower = C.compare([side("x", "passed", 3.0)], [side("x", "passed", 1.0)])
    assert slower["duration_changes"][0].change == pytest.approx(-2.0)


def test_a_test_listed_twice_pairs_by_occurrence():
    base = [side("a", "passed", test=1), side("a", "failed", test=2)]
    head = [side("a", "passed", test=3)]
    found = C.compare(base, head)
    assert [p.base.test for p in found["removed"]] == [2]
    assert found["newly_failing"] == [] and found["fixed"] == []
