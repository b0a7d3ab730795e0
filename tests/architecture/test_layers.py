"""The package's layering, read from the imports of ``src/semtalk`` (every import, including the
ones inside functions): no import circle between modules, and each package imports only the
packages below it (``LAYERS``, the table ``docs/architecture.md`` draws)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src" / "semtalk"
DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"

FOUNDATION = {"constants", "errors", "fileio", "config", "devices"}
"""Modules every layer may import (version and rates, the error type, atomic files, typed
configs)."""

LAYERS: dict[str, set[str]] = {
    "constants": set(),
    "errors": set(),
    "fileio": {"constants", "errors"},
    "config": {"errors"},
    "devices": set(),
    "body": set(),
    "modules": {"body"},
    "models": {"body", "modules"},
    "configs": set(),
    "losses": {"body", "models"},
    "data": {"body"},
    "features": {"body", "data"},
    "metrics": {"body", "models"},
    "render": {"body", "data"},
    "export": {"body"},
    "release": {"body", "models", "features", "data"},
    "official": {"body", "modules", "models", "features", "data", "release"},
    "inference": {"body", "modules", "models"},
    "training": {"body", "configs", "data", "features", "inference", "losses", "metrics", "models",
                 "modules", "release"},
    "generation": {"body", "data", "features", "models", "inference", "release", "render",
                   "export", "official"},
    "evaluation": {"body", "configs", "data", "features", "metrics", "models", "generation",
                   "release"},
    "pipeline": {"body", "configs", "data", "features", "models", "training", "generation",
                 "evaluation", "release", "metrics"},
    "app": {"body", "data", "export", "features", "generation", "release", "render"},
    "cli": {"app", "body", "configs", "data", "features", "models", "training", "generation",
            "evaluation", "pipeline", "release", "render", "export", "inference", "metrics",
            "official"},
}
"""``package -> packages it may import`` (besides itself and ``FOUNDATION``). A package is a
folder under ``src/semtalk`` or a top-level module."""

FACADE = "semtalk"
"""The package root: ``semtalk.SemTalk`` loads the engine lazily; no module imports the root."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def _imported(name: str, path: Path) -> Iterator[str]:
    """Every ``semtalk`` module or name ``name`` (at ``path``) imports, anywhere in the file."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """``module -> semtalk modules it imports`` (a name imported from a module counts as that
    module, or as the submodule of that name when there is one)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in _imported(name, path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("semtalk") and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else FACADE


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        mine = package_of(module)
        for target in sorted(targets):
            theirs = package_of(target)
            if theirs == mine or mine == FACADE or theirs in FOUNDATION:
                continue
            if theirs == FACADE:
                problems.append(f"{module} imports the package root (import from "
                                f"semtalk.constants instead)")
            elif mine not in LAYERS:
                problems.append(f"{module}: package '{mine}' has no row in LAYERS")
            elif theirs not in LAYERS[mine]:
                problems.append(f"{module} imports {target}: '{mine}' may not import "
                                f"'{theirs}'")
    return problems


def test_the_graph_sees_imports_inside_functions() -> None:
    graph = import_graph()
    assert "semtalk.generation.engine" in graph["semtalk"]  # lazy, inside __getattr__
    assert "semtalk.body.parts" in graph["semtalk.models.base_generator"]


def test_circle_finder_finds_a_planted_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_circles(graph) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": set()}) == []


def test_layer_check_flags_an_upward_import() -> None:
    graph = {"semtalk.models.x": {"semtalk.training.y"}, "semtalk.training.y": set()}
    assert layer_violations(graph) == [
        "semtalk.models.x imports semtalk.training.y: 'models' may not import 'training'"]


def test_no_import_circles() -> None:
    circles = import_circles(import_graph())
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_every_package_imports_only_lower_layers() -> None:
    problems = layer_violations(import_graph())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lower", ["body", "modules", "models", "losses", "data", "features"])
def test_lower_layers_never_reach_the_stages(lower: str) -> None:
    assert not LAYERS[lower] & {"training", "generation", "pipeline", "evaluation", "cli"}


def test_training_and_generation_never_import_each_other() -> None:
    assert "generation" not in LAYERS["training"]
    assert "training" not in LAYERS["generation"]


def test_every_package_has_a_row() -> None:
    packages = {package_of(m) for m in import_graph()} - {FACADE}
    assert packages <= set(LAYERS), sorted(packages - set(LAYERS))


def documented_layers() -> dict[str, set[str]]:
    """``package -> packages it may import`` as the table in ``docs/architecture.md`` says
    (first column: the package, first name; last column: what it may import)."""
    rows: dict[str, set[str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        names = re.findall(r"`([\w.]+?)(?:/|\.py)?`", cells[0]) if len(cells) == 3 else []
        if names and names[0] not in FOUNDATION:
            rows[names[0]] = set(re.findall(r"`(\w+)`", cells[2]))
    return rows


def test_the_architecture_doc_draws_this_table() -> None:
    assert documented_layers() == {name: allowed for name, allowed in LAYERS.items()
                                   if name not in FOUNDATION}
