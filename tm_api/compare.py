"""Two runs side by side: what changed from a base run to a head run.

No Django import here: tm_api.history reads both runs' tests, this module pairs and sorts them.
Tests are paired by identity (tm_api.outcomes.identity); a test listed twice in a run pairs
with the other run's same occurrence (first with first).
"""

from typing import NamedTuple

FAILING = ("failed", "error")
DURATION_CHANGES = 20  # the biggest changes listed


class Side(NamedTuple):
    key: str
    file_path: str
    file_name: str
    test: int  # the test's pk in its run
    status: str
    outcome: str
    duration: float | None


class Pair(NamedTuple):
    key: str
    file_path: str
    file_name: str
    base: Side | None
    head: Side | None

    @property
    def change(self) -> float | None:
        """Seconds the head took more (negative: less) than the base; None without both."""
        if self.base is None or self.head is None:
            return None
        if self.base.duration is None or self.head.duration is None:
            return None
        return self.head.duration - self.base.duration


CATEGORIES = ("newly_failing", "fixed", "still_failing", "new", "removed")


def pairs(base: list, head: list) -> list:
    """Every test of either run, paired by identity and occurrence, in the head's order then
    the base's leftovers."""
    seen: dict[str, int] = {}
    keyed_base = {}
    for side in base:
        n = seen[side.key] = seen.get(side.key, 0) + 1
        keyed_base[(side.key, n)] = side
    seen.clear()
    paired = []
    for side in head:
        n = seen[side.key] = seen.get(side.key, 0) + 1
        other = keyed_base.pop((side.key, n), None)
        paired.append(Pair(side.key, side.file_path, side.file_name, other, side))
    paired.extend(Pair(side.key, side.file_path, side.file_name, side, None)
                  for side in keyed_base.values())
    return paired


def category(pair: Pair) -> str | None:
    if pair.base is None:
        return "new"
    if pair.head is None:
        return "removed"
    was, now = pair.base.status in FAILING, pair.head.status in FAILING
    if now and was:
        return "still_failing"
    if now:
        return "newly_failing"
    if was and pair.head.status == "passed":
        return "fixed"
    return None


def compare(base: list, head: list, limit: int = DURATION_CHANGES) -> dict:
    """{category: [Pair]} for CATEGORIES, and "duration_changes": the `limit` pairs whose
    duration changed most (either way), biggest first."""
    found: dict[str, list[Pair]] = {name: [] for name in CATEGORIES}
    paired = pairs(base, head)
    for pair in paired:
        name = category(pair)
        if name is not None:
            found[name].append(pair)
    timed = [pair for pair in paired if pair.change]
    timed.sort(key=lambda pair: (-abs(pair.change), pair.key))
    found["duration_changes"] = timed[:limit]
    return found
