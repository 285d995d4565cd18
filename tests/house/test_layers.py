"""The import graph the architecture page promises: each layer imports only the layers below
it, the core imports no Prefect, nothing shipped imports development tooling, and no two
modules import each other through any chain. Read from the source, so lazy imports count."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Lowest first; a package may import only the packages listed before it (and itself).
LAYERS = ["m365", "playbook", "orchestration", "tasks", "flows"]
SHIPPED = [*LAYERS, "emulator"]
DEV_ONLY = {"devtools", "bench", "tests"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in [*SHIPPED, "devtools"]:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path, *, at_runtime: bool = False) -> Iterator[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    # Imports only a type checker sees do not run, so they cannot form a cycle at import time.
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if at_runtime and id(node) in typing_only:
            continue
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # ``from pkg import module`` needs the module, not the package's __init__ alone.
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def _top(module: str) -> str:
    return module.split(".")[0]


def _edges(name: str) -> set[str]:
    return {m for m in _imports(name, MODULES[name], at_runtime=True) if m in MODULES and m != name}


def test_the_graph_is_read() -> None:
    assert "playbook.params" in MODULES
    assert "orchestration.approvals.wait" in MODULES
    assert "playbook.params" in _edges("orchestration.naming")


@pytest.mark.parametrize("package", LAYERS)
def test_each_layer_imports_only_layers_below(package: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(package) + 1])
    upward = {
        f"{name} -> {target}"
        for name, path in MODULES.items()
        if _top(name) == package
        for target in _imports(name, path)
        if _top(target) in set(LAYERS) - allowed or _top(target) in DEV_ONLY
    }
    assert not upward


def test_the_core_imports_no_prefect() -> None:
    offenders = {
        f"{name} -> {target}"
        for name, path in MODULES.items()
        if _top(name) in {"m365", "playbook"}
        for target in _imports(name, path)
        if _top(target) == "prefect"
    }
    assert not offenders


def test_the_emulator_stands_alone() -> None:
    offenders = {
        f"{name} -> {target}"
        for name, path in MODULES.items()
        if _top(name) == "emulator"
        for target in _imports(name, path)
        if _top(target) in set(LAYERS) - {"m365"} or _top(target) in DEV_ONLY
    }
    assert not offenders


def test_no_import_cycles() -> None:
    graph = {name: _edges(name) for name in MODULES}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles


def test_development_tooling_is_not_in_the_wheel() -> None:
    text = (REPO / "pyproject.toml").read_text()
    shipped = text.split("packages = [", 1)[1].split("]", 1)[0]
    assert "devtools" not in shipped
    assert all(f'"{package}"' in shipped for package in SHIPPED)
