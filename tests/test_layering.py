"""Data flows one way: catalog -> formulations -> solver -> api (the package root) -> cli.
No module imports from a later layer (also not lazily inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ["catalog", "formulations", "solver", "exporters", "plots", "api", "service", "cli"]


def imported_layers(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "infersave":
                continue
            if len(parts) == 1:  # the package root is the front door (api/)
                found.add("api")
            elif parts[1] in LAYERS:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_no_import_from_a_later_layer(layer: str) -> None:
    later = set(LAYERS[LAYERS.index(layer) + 1 :])
    files = sorted((REPO / layer).glob("*.py"))
    assert files
    bad = {f.name: imported_layers(f) & later for f in files if imported_layers(f) & later}
    assert bad == {}


def test_readme_lists_every_scenario_field() -> None:
    """The README's option table is printed from the field specs: every field is in it."""
    from infersave.solver.fields import FIELDS

    text = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [f.flag for f in FIELDS if f"| `{f.flag}` |" not in text]
    assert missing == []
