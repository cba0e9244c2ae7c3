"""The import graph: dependencies run one way, offrl <- agents <- benchmarks, with no circle, and
only the command line defers imports of the project's own modules (to keep `--help` fast)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("offrl", "agents", "benchmarks")
LAYER = {"offrl": 0, "agents": 1, "benchmarks": 2}
ENTRY_POINT = "offrl.cli"  # sees every layer, and defers heavy imports until a verb runs


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
}


def imported(node: ast.AST, current: str) -> list[str]:
    """The project modules an import statement names (`from a import b` names a.b if it is one)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = current.split(".")[: -node.level or None]
            if MODULES.get(current, Path()).name == "__init__.py":
                package = current.split(".")[: len(current.split(".")) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" for alias in node.names]
        names = [name if name in MODULES else base for name in names]
    else:
        return []
    return [name for name in names if name.split(".")[0] in PACKAGES]


def imports(module: str) -> tuple[set[str], set[str]]:
    """(imports at module level, imports inside functions) of a project module."""
    tree = ast.parse(MODULES[module].read_text())
    top = {name for node in tree.body for name in imported(node, module)}
    inner = {
        name
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
        for name in imported(node, module)
    }
    return top, inner


GRAPH = {module: imports(module) for module in MODULES}


def test_the_walker_sees_the_packages_it_checks():
    assert {"offrl.train", "agents.td3bc", "benchmarks.runner", "offrl.cli"} <= set(MODULES)
    assert "offrl.train" in GRAPH["agents.prdc"][0] or "offrl.td3" in GRAPH["agents.prdc"][0]


@pytest.mark.parametrize("module", sorted(set(MODULES) - {ENTRY_POINT}))
def test_no_module_imports_a_higher_layer(module):
    top, inner = GRAPH[module]
    own = LAYER[module.split(".")[0]]
    upward = sorted(name for name in top | inner if LAYER[name.split(".")[0]] > own)
    assert not upward, f"{module} imports {upward}: offrl <- agents <- benchmarks"


@pytest.mark.parametrize("module", sorted(set(MODULES) - {ENTRY_POINT}))
def test_only_the_command_line_imports_project_modules_inside_functions(module):
    assert not GRAPH[module][1], f"{module} imports {sorted(GRAPH[module][1])} in a function"


def test_the_module_level_import_graph_has_no_circle():
    edges = {m: {n for n in GRAPH[m][0] if n in MODULES and n != m} for m in MODULES}
    # A package's __init__ runs before its submodules: importing a.b imports a first.
    for module in MODULES:
        parent = module.rpartition(".")[0]
        if parent in MODULES:
            edges[module].add(parent)
    edges = {m: {n for n in targets if not m.startswith(n + ".")} for m, targets in edges.items()}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                circle = [*path[path.index(target) :], target]
                pytest.fail(f"import circle: {' -> '.join(circle)}")
            if target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])
