"""Every CuPy name the backends use exists in the installed CuPy (where CuPy imports).

The names are found by reading ``backends/*.py`` with :mod:`ast`, not from a list kept by
hand: every attribute chain rooted at the ``cupy`` or ``cupyx`` module, at ``self._cupy``
(the CuPy backend's handle on the module), at ``lib`` (the library module that
``backends/strided.py`` receives: NumPy or CuPy), or at a local name assigned from one of
those, and every ``from cupy... import`` / ``import cupy...``. Each chain is resolved
attribute by attribute (importing submodules where needed), so a GPU-less machine with CuPy
installed checks what the GPU code will call. Without CuPy the check is skipped with the
reason; the parser itself is tested everywhere.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

#: The backends' source files, in the checkout or in the installed package.
BACKENDS = Path(importlib.import_module("xpnn.backends").__file__).resolve().parent
#: How the backends' code refers to a CuPy module: name -> module.
ROOT_NAMES = {"cupy": "cupy", "cupyx": "cupyx", "lib": "cupy"}
#: ``self.<attribute>`` that holds the cupy module.
SELF_ATTRIBUTES = {"_cupy": "cupy"}


def _chain(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """The dotted CuPy name an expression denotes (``cupy.cuda.Device``), or None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
        if (isinstance(node, ast.Name) and node.id == "self" and parts
                and parts[-1] in SELF_ATTRIBUTES):
            return ".".join([SELF_ATTRIBUTES[parts.pop()], *reversed(parts)])
    if isinstance(node, ast.Name) and node.id in aliases:
        return ".".join([aliases[node.id], *reversed(parts)])
    return None


def cupy_names(source: str) -> set[str]:
    """The dotted CuPy names used in a module's source (longest chains only)."""
    tree = ast.parse(source)
    aliases = dict(ROOT_NAMES)
    names: set[str] = set()
    for node in ast.walk(tree):  # imports and local aliases first
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("cupy", "cupyx"):
                    names.add(alias.name)
                    if alias.asname:
                        aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] in ("cupy", "cupyx", "cupy_backends"):
            for alias in node.names:
                names.add(f"{node.module}.{alias.name}")
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], ast.Name)):
            found = _chain(node.value, aliases) if isinstance(node.value, ast.Attribute) else None
            if found:
                aliases[node.targets[0].id] = found
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            found = _chain(node, aliases)
            if found:
                names.add(found)
    return {name for name in names
            if not any(other.startswith(name + ".") for other in names)}


def test_the_parser_finds_cupy_names_through_every_kind_of_reference():
    source = (
        "import cupy\nimport cupyx\nimport array_api_compat.cupy as xp_cupy\n"
        "from cupy.cuda import runtime as rt\n"
        "class B:\n"
        "    def f(self, lib):\n"
        "        cupy.cuda.Device(0).synchronize()\n"
        "        self._cupy.RawModule(code='')\n"
        "        tricks = self._cupy.lib.stride_tricks\n"
        "        tricks.sliding_window_view(x)\n"
        "        cupyx.scatter_add(a, b, c)\n"
        "        lib.maximum(a, b, out=a)\n"
        "        rt.getDeviceCount()\n"
        "        self.other.thing\n"
        "        numpy.add\n"
    )
    assert cupy_names(source) == {
        "cupy.cuda.Device", "cupy.RawModule", "cupy.lib.stride_tricks.sliding_window_view",
        "cupyx.scatter_add", "cupy.maximum", "cupy.cuda.runtime.getDeviceCount",
    }


def _backend_names() -> dict[str, set[str]]:
    return {path.name: cupy_names(path.read_text()) for path in sorted(BACKENDS.glob("*.py"))}


def test_the_backends_use_cupy_names_the_parser_sees():
    """The scan is not vacuous: the CuPy backend and the strided kernels use CuPy names."""
    names = _backend_names()
    assert "cupy.RawModule" in names["cupy.py"]
    assert "cupy.maximum" in names["strided.py"]


def _resolve(name: str) -> object:
    """The object a dotted name denotes, importing submodules on the way."""
    parts = name.split(".")
    target = importlib.import_module(parts[0])
    for index, part in enumerate(parts[1:], start=1):
        try:
            target = getattr(target, part)
        except AttributeError:
            target = importlib.import_module(".".join(parts[:index + 1]))
    return target


@pytest.mark.parametrize("module", sorted(path.name for path in BACKENDS.glob("*.py")))
def test_every_cupy_name_exists_in_the_installed_cupy(module):
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed: nothing to audit "
                               "(pip install 'cupy-cuda12x>=14'; the test extra brings it "
                               "on Linux x86-64)")
    names = _backend_names()[module]
    missing = []
    for name in sorted(names):
        try:
            _resolve(name)
        except (AttributeError, ImportError) as error:
            missing.append(f"{name} ({type(error).__name__}: {error})")
    assert not missing, f"{module} uses names CuPy {cupy.__version__} lacks: {missing}"
