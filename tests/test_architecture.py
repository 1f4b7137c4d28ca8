"""The core never imports NumPy or CuPy for math: layers, losses, optimizers, metrics and the
shared math module ask their backend (or their arguments) for the namespace."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "xpnn"
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
