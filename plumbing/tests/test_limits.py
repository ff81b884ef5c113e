"""docs/limits.md lists every limit's setting."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit


def test_every_limit_setting_is_in_the_table_of_docs_limits():
    root = Path(__file__).resolve().parents[2]
    settings_text = (root / "trace_project" / "settings.py").read_text()
    section = settings_text.split("# --- limits ---", 1)[1].split("\n# --- ", 1)[0]
    names = re.findall(r'_read\(\s*"\w+",\s*"(\w+)"', section) + [
        name for pair in re.findall(r'_rate\(\s*"(\w+)",\s*[\d._]+,\s*"(\w+)"', section)
        for name in pair]
    assert len(names) >= 10
    table = (root / "docs" / "limits.md").read_text().split("## Notes", 1)[0]
    assert [name for name in names if f"`{name}`" not in table] == []
