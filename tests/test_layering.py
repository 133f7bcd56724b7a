"""Imports run one way: modules <- text, metrics, figures, datamodules <- tasks <- suite <- train/eval/predict.py.

Read from the source with ``ast`` (every ``import`` and ``from ... import``, also inside functions), so a lazy import
cannot hide a dependency that runs the wrong way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIER = {"modules": 0, "text": 1, "metrics": 1, "figures": 1, "datamodules": 1, "tasks": 2, "suite": 3}


def imported_packages(path: Path) -> set[str]:
    """The suite's top-level packages that ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(TIER)
    return found


def package_graph() -> dict[str, dict[str, list[str]]]:
    """package -> {imported package -> the files that import it}."""
    graph: dict[str, dict[str, list[str]]] = {package: {} for package in TIER}
    for package in TIER:
        for path in sorted((ROOT / package).rglob("*.py")):
            for imported in imported_packages(path) - {package}:
                graph[package].setdefault(imported, []).append(str(path.relative_to(ROOT)))
    return graph


def cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle of the package graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}   # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in graph:
        if start not in state and (found := visit(start, [start])):
            return found
    return None


@pytest.mark.parametrize("package", list(TIER))
def test_no_package_imports_one_that_stands_above_it(package):
    upward = {imported: files for imported, files in package_graph()[package].items()
              if TIER[imported] > TIER[package]}
    assert not upward, f"{package}/ imports packages above it: {upward}"


def test_the_packages_import_each_other_without_a_cycle():
    assert cycle(package_graph()) is None


def test_the_checks_see_a_wrong_way_import(tmp_path):
    """The detector itself: an upward import and a cycle in a made-up graph are found."""
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def lazy():\n    from suite.run import run\n    import tasks.stn\n")
    assert imported_packages(wrong) == {"suite", "tasks"}
    assert cycle({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b": []}, "b": {}, "c": {"a": []}}) is None
