"""The core never imports NumPy or CuPy for math: layers, losses, optimizers, metrics and the
shared math module ask their backend (or their arguments) for the namespace."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import xpnn.backends

import xpnn

#: The package's source, in the checkout or installed (where backends/ sits in xpnn/).
CORE = Path(xpnn.__file__).resolve().parent
BACKENDS = Path(xpnn.backends.__file__).resolve().parent
DEVICE_INDEPENDENT = [
    *sorted((CORE / "layers").glob("*.py")),
    CORE / "losses.py", CORE / "optimizers.py", CORE / "metrics.py", CORE / "functional.py",
]


@pytest.mark.parametrize("path", DEVICE_INDEPENDENT, ids=lambda p: p.name)
def test_no_numpy_or_cupy_math_imports(path):
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    allowed = {"numpy"} if path.name == "base.py" else set()  # host-side init generator only
    assert not (imported & {"numpy", "cupy"}) - allowed, f"{path.name} imports {imported}"


def _sources() -> dict[str, Path]:
    """xpnn's modules by name (``xpnn.layers.dense``, ``xpnn.backends.numpy``), without the
    test suite."""
    sources = {}
    for root, package in ((CORE, "xpnn"), (BACKENDS, "xpnn.backends")):
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[0] in ("tests", "backends") and root is CORE:
                continue  # the tests, and an installed backends/ (read from BACKENDS)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            sources[".".join([package, *parts])] = path
    return sources


def _import_graph() -> dict[str, set[str]]:
    """Every xpnn module and the xpnn modules it imports anywhere in the file (module level,
    inside functions and in TYPE_CHECKING blocks alike)."""
    paths = _sources()

    def resolve(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets |= {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {found for target in targets if target.startswith("xpnn")
                       and (found := resolve(target)) is not None and found != name}
    return graph


def test_no_import_cycles_among_xpnn_modules():
    """Imports only go down the layers of the house (docs/architecture.md): a depth-first
    search finds no module that imports itself through others."""
    graph = _import_graph()
    assert len(graph) > 40
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
