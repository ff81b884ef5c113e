"""App dependencies run one way (docs/apps.md): each app imports only the apps below it.

    plumbing  <-  accounts  <-  notifications  <-  idempotency  <-  traces, tm_api, tracking
              <-  trace_project

Every import of every module of an app is read (its tests apart: they may set up data of other
apps), at any depth, so that an import inside a function cannot hide a loop."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = {"traces", "tm_api", "tracking"}
OURS = {"plumbing", "accounts", "notifications", "idempotency", *DOMAIN, "trace_project"}
ALLOWED = {
    "plumbing": set(),
    "accounts": {"plumbing"},
    "notifications": {"plumbing", "accounts"},
    "idempotency": {"plumbing", "accounts", "notifications"},
    # Domain apps do not import each other.
    **{app: {"plumbing", "accounts", "notifications", "idempotency"} for app in DOMAIN},
    "trace_project": OURS,
}


def imported_apps(path: Path) -> dict[str, int]:
    """Our apps imported by the module at `path`: app -> first line."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            app = name.split(".")[0]
            if app in OURS:
                found.setdefault(app, node.lineno)
    return found


def modules_of(app: str):
    for path in sorted((ROOT / app).rglob("*.py")):
        if "tests" not in path.relative_to(ROOT / app).parts:
            yield path


@pytest.mark.parametrize("app", sorted(ALLOWED))
def test_an_app_imports_only_the_apps_below_it(app):
    wrong = []
    for path in modules_of(app):
        for imported, line in imported_apps(path).items():
            if imported != app and imported not in ALLOWED[app]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not wrong, (f"{app} may import only {sorted(ALLOWED[app]) or 'no app of ours'} "
                       "(docs/apps.md):\n" + "\n".join(wrong))


def test_every_app_of_ours_has_its_place_in_the_graph():
    apps = {path.parent.name for path in ROOT.glob("*/apps.py")}
    assert apps <= set(ALLOWED), f"apps without a place in ALLOWED: {sorted(apps - set(ALLOWED))}"
