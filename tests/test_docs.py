"""The documentation site builds with warnings as errors and documents every public name.

The build is Sphinx's (the ``docs`` extra, part of ``test``), run as the README says:
``python -m sphinx -W --keep-going -b html docs <out>``. A warning — a docstring that is not
valid reStructuredText, a cross-reference to nothing, a broken link between pages — fails it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import xpnn

from .paths import DOCS, REPOSITORY, requires_repository

pytestmark = [requires_repository, pytest.mark.slow]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the site once, from scratch, with every warning an error."""
    pytest.importorskip("sphinx", reason="the docs extra (part of the test extra) builds the site")
    out = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
               "-d", str(out / "doctrees"), str(DOCS), str(out / "html")]
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, (
        "the documentation build failed (warnings are errors):\n" + result.stderr[-20000:])
    return out / "html"


def test_the_site_builds_with_warnings_as_errors(site: Path) -> None:
    for page in ("index.html", "architecture.html", "api/index.html", "benchmarks.html",
                 "api/generated/xpnn.layers.dense.html"):
        assert (site / page).is_file(), page


def documented_names(site: Path) -> set[str]:
    from sphinx.util.inventory import InventoryFile

    with open(site / "objects.inv", "rb") as stream:
        inventory = InventoryFile.load(stream, "", lambda base, uri: uri)
    return {name for kind, entries in inventory.items() if kind.startswith("py:")
            for name in entries}


def canonical_name(obj: object) -> str | None:
    if isinstance(obj, type(xpnn)):
        return obj.__name__
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else None


def test_every_public_name_is_in_the_reference(site: Path) -> None:
    """A name exported by ``xpnn`` or ``xpnn.layers`` is documented where it is defined; a new
    module needs its one line in docs/api/index.rst."""
    documented = documented_names(site)
    missing = []
    for package in (xpnn, xpnn.layers):
        for name in package.__all__:
            target = canonical_name(getattr(package, name))
            if target is not None and target not in documented:
                missing.append(f"{package.__name__}.{name} (defined as {target})")
    assert not missing, (
        "not in the API reference: " + ", ".join(missing) + ". Add the defining module to a "
        "module-table in docs/api/index.rst")
