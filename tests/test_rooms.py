"""The rooms' import order (README "Architecture"): a module imports only from its own room or the
rooms below it, so a reader can tell from a module's folder what it may depend on."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Lowest first: each room may import from the rooms before it.
ROOMS = ["backend", "store.db", "store.warehouse", "store.profiles", "store.delivery", "store.catalog", "store.ingest",
         "store.analytic", "store.compute", "store.insights", "tools", "server"]


def room_of(module: str) -> str | None:
    matches = [room for room in ROOMS if module == room or module.startswith(room + ".")]
    return max(matches, key=len) if matches else None


def project_imports(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
    return [module for module in modules if room_of(module)]


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


SOURCES = sorted(path for top in ("backend", "store", "tools", "server") for path in (ROOT / top).rglob("*.py")
                 if room_of(module_of(path)))


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_a_module_imports_only_from_its_room_and_the_rooms_below(path):
    own = ROOMS.index(room_of(module_of(path)))
    upward = [imported for imported in project_imports(path) if ROOMS.index(room_of(imported)) > own]
    assert upward == []


def test_store_keeps_no_modules_of_its_own_beside_its_rooms():
    assert sorted(path.name for path in (ROOT / "store").glob("*.py")) == ["__init__.py"]
