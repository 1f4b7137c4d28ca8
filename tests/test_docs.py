"""The documentation site builds with warnings as errors, documents every public name, and the
code of every guide runs.

The build is Sphinx's (the ``docs`` extra, part of ``test``), run as the README says:
``python -m sphinx -W --keep-going -b html docs <out>``. A warning — a docstring that is not
valid reStructuredText, a cross-reference to nothing, a broken link between pages — fails it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import xpnn

from .paths import DOCS, REPOSITORY, requires_repository

pytestmark = [requires_repository, pytest.mark.slow]

GUIDES = sorted((DOCS / "guides").glob("*.md")) if DOCS.is_dir() else []
#: A ```python block right after this comment is shown but not run (the reason follows it).
NOT_RUN = re.compile(r"<!--\s*not run:[^>]*-->\s*$")


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
    guides = {path.stem for path in GUIDES}
    assert {"getting-started", "custom-layers"} <= guides
    for guide in guides:
        assert (site / "guides" / f"{guide}.html").is_file(), guide


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


def code_blocks(guide: Path) -> list[tuple[int, str]]:
    """The ```python blocks of a Markdown guide as (first line number, code), without those
    marked ``<!-- not run: reason -->``."""
    blocks, lines = [], guide.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() == "```python":
            start = index + 1
            end = start
            while lines[end].strip() != "```":
                end += 1
            previous = next((line for line in reversed(lines[:index]) if line.strip()), "")
            if not NOT_RUN.search(previous):
                blocks.append((start + 1, "\n".join(lines[start:end])))
            index = end
        index += 1
    return blocks


def test_code_blocks_are_read_in_order_and_a_marked_one_is_left_out(tmp_path: Path) -> None:
    guide = tmp_path / "guide.md"
    guide.write_text("Text.\n\n```python\nx = 1\n```\n\n<!-- not run: needs a GPU -->\n"
                     "```python\nmodel.to('cuda')\n```\n\n```bash\nls\n```\n\n"
                     "```python\ny = x + 1\n```\n", encoding="utf-8")
    assert code_blocks(guide) == [(4, "x = 1"), (17, "y = x + 1")]


# Runs the blocks of one guide in order, in one namespace, in a fresh process (so that the
# guide's custom classes and device settings stay out of the test process); a traceback names
# the guide's file and line.
RUNNER = textwrap.dedent("""
    import json, sys
    namespace = {"__name__": "__guide__"}
    for path, line, code in json.load(sys.stdin):
        exec(compile("\\n" * (line - 1) + code, path, "exec"), namespace)
""")


WITH_CODE = [path for path in GUIDES if code_blocks(path)]


@pytest.mark.parametrize("guide", WITH_CODE, ids=[path.stem for path in WITH_CODE])
def test_the_code_of_each_guide_runs(guide: Path, tmp_path: Path) -> None:
    blocks = code_blocks(guide)
    payload = json.dumps([[str(guide), line, code] for line, code in blocks])
    result = subprocess.run([sys.executable, "-c", RUNNER], input=payload, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600,
                            env=_environment())
    assert result.returncode == 0, (
        f"a code block of {guide.name} failed:\n{result.stderr[-8000:]}")


def _environment() -> dict[str, str]:
    """This process's environment, without a default device, with matplotlib's file backend."""
    environment = {key: value for key, value in os.environ.items() if key != "XPNN_DEVICE"}
    return {**environment, "MPLBACKEND": "Agg"}
