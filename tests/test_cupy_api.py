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
import importlib.util
import warnings
from pathlib import Path

import pytest

#: The backends' source files, in the checkout or in the installed package.
BACKENDS = Path(importlib.import_module("xpnn.backends").__file__).resolve().parent
#: How the backends' code refers to a CuPy module: name -> module.
ROOT_NAMES = {"cupy": "cupy", "cupyx": "cupyx", "lib": "cupy"}
#: ``self.<attribute>`` that holds the cupy module (or its NCCL binding).
SELF_ATTRIBUTES = {"_cupy": "cupy", "_nccl": "cupy.cuda.nccl"}
#: Names the parser cannot see (methods of objects the backends keep), per module.
EXTRA_NAMES = {"nccl.py": {"cupy.cuda.nccl.NcclCommunicator.allReduce"}}
#: CuPy's NCCL binding, which imports only where the NCCL library loads.
NCCL = "cupy.cuda.nccl"


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
    return {path.name: cupy_names(path.read_text()) | EXTRA_NAMES.get(path.name, set())
            for path in sorted(BACKENDS.glob("*.py"))}


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


def _nccl_binary_names() -> bytes | None:
    """The compiled NCCL binding's bytes where NCCL itself does not load (then
    ``cupy.cuda.nccl`` holds only ``available = False``, but the extension module, whose
    string table holds every name it defines, is installed), else None."""
    with warnings.catch_warnings():  # CuPy warns that the NCCL library cannot be loaded
        warnings.simplefilter("ignore")
        import cupy.cuda.nccl as nccl

    if nccl.available:
        return None
    spec = importlib.util.find_spec("cupy_backends.cuda.libs.nccl")
    return Path(spec.origin).read_bytes() if spec is not None and spec.origin else b""


def test_the_nccl_names_are_audited():
    names = _backend_names()["nccl.py"]
    assert {"cupy.cuda.nccl.NcclCommunicator", "cupy.cuda.nccl.get_unique_id",
            "cupy.cuda.nccl.NCCL_SUM", "cupy.cuda.nccl.NCCL_FLOAT32",
            "cupy.cuda.get_current_stream", "cupy.ascontiguousarray"} <= names


@pytest.mark.parametrize("module", sorted(path.name for path in BACKENDS.glob("*.py")))
def test_every_cupy_name_exists_in_the_installed_cupy(module):
    """Every name resolves in the installed CuPy. The names of CuPy's NCCL binding resolve
    where NCCL loads (a GPU box with nvidia-nccl-cu12); elsewhere each must appear in the
    compiled binding's string table."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed: nothing to audit "
                               "(pip install 'cupy-cuda12x>=14'; the test extra brings it "
                               "on Linux x86-64)")
    names = _backend_names()[module]
    binary = _nccl_binary_names() if any(name.startswith(NCCL + ".") for name in names) \
        else None
    missing = []
    for name in sorted(names):
        if binary is not None and name.startswith(NCCL + "."):
            if name.rsplit(".", 1)[1].encode() not in binary:
                missing.append(f"{name} (not in the compiled NCCL binding)")
            continue
        try:
            _resolve(name)
        except (AttributeError, ImportError) as error:
            missing.append(f"{name} ({type(error).__name__}: {error})")
    assert not missing, f"{module} uses names CuPy {cupy.__version__} lacks: {missing}"
