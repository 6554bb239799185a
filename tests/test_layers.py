"""The layers point one way and no module imports itself round a circle, read from the source (no import runs).

models/ imports nothing of data/ or sweep/; data/ nothing of sweep/; the engine (sweep/engine) never imports Ray;
sweep/analysis loads no JAX when imported. An import inside a function counts for the direction of a layer (it
runs sooner or later) and for circles (a circle hidden in a function is still two modules that need each other);
an import under `if TYPE_CHECKING:` never runs and counts for neither.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "data", "sweep")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(tree: ast.Module, known: set[str]) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import statement that runs; `from a import b` names a.b when
    that is a module of the project, else a."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, top)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.append((full if full in known else node.module, top))
        nested = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, nested)

    for statement in tree.body:
        visit(statement, True)
    return found


def project_imports() -> dict[str, list[tuple[str, bool]]]:
    files = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    known = {_module_name(p) for p in files}
    return {_module_name(p): imports_of(ast.parse(p.read_text(), str(p)), known) for p in files}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the directed graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (circle := walk(target)):
                return circle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (circle := walk(start)):
            return circle
    return None


@pytest.fixture(scope="module")
def imports():
    return project_imports()


LAYER_RULES = [  # (modules under, must not import, only at module level?)
    ("models", "data", False),
    ("models", "sweep", False),
    ("data", "sweep", False),
    ("sweep.engine", "ray", False),
    ("sweep.analysis", "jax", True),
    ("sweep.analysis", "flax", True),
]


@pytest.mark.parametrize("layer, forbidden, module_level_only", LAYER_RULES)
def test_a_layer_never_imports_what_sits_above_it(imports, layer, forbidden, module_level_only):
    broken = sorted(f"{module} imports {target}" for module, found in imports.items() if _in(module, layer)
                    for target, top in found if _in(target, forbidden) and (top or not module_level_only))
    assert broken == []


def test_no_two_modules_import_each_other_round_a_circle(imports):
    graph = {module: {target for target, _ in found if target in imports and target != module}
             for module, found in imports.items()}
    assert find_circle(graph) is None


def test_the_checks_see_a_circle_and_a_function_level_import():
    """The walker itself: an import inside a function is found (marked not module-level) and a circle is named."""
    tree = ast.parse("import os\nif TYPE_CHECKING:\n    import data.spec\ndef f():\n    from sweep import cli\n")
    assert imports_of(tree, {"sweep.cli"}) == [("os", True), ("sweep.cli", False)]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": {"c"}}) is None


def test_a_bad_command_line_is_refused_without_loading_jax():
    """The checks that run before any work (config, fusion spec, --init files) are plain Python: a refusal costs a
    fraction of a second, not JAX's multi-second import."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from sweep.cli import main\n"
            "code = main(['run', '--init', 'resnet50v2=imagenet', '--cnn-cuts', 'block2_drop'])\n"
            "assert code == 2, code\n"
            "loaded = [m for m in ('jax', 'flax', 'ray') if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "weights fetch resnet50v2" in result.stderr
