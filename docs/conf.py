"""Sphinx configuration of xpnn's documentation site.

Build it (the ``docs`` extra) with warnings as errors, as ``tests/test_docs.py`` does::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API reference is generated from the docstrings, which are reStructuredText with Sphinx
roles (:class:`...`, ``::`` literal blocks, simple tables); the guides and the pages taken from
the repository (README.md, docs/architecture.md, benchmarks/README.md) are Markdown, read by
MyST. docs/contributing.md says how to add a module to the reference.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

from sphinx.util.docutils import SphinxDirective

import xpnn

project = "xpnn"
author = "the xpnn authors"
copyright = "the xpnn authors"
release = xpnn.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# -- Markdown (MyST) ---------------------------------------------------------------------------
# Anchors for headings down to ###, so that a guide can link to README.md#saving-... .
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

# -- The API reference (autodoc) ---------------------------------------------------------------
# docs/api/index.rst lists the modules in ``module-table`` directives (defined below), one
# dotted name a line; each gets a page docs/api/generated/<name>.rst (written at every build,
# not committed) that documents the module with ``automodule``.
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_class_signature = "mixed"
python_use_unqualified_type_names = True
add_module_names = False
toc_object_entries_show_parents = "hide"

# Every cross-reference in a docstring must resolve (warnings are errors), except the names
# of types that live outside xpnn and are not documented here.
nitpicky = True
nitpick_ignore_regex = [
    # types from outside xpnn (the standard library, NumPy, ...) and xpnn's type aliases
    (r"py:(class|obj|data)", r"(numpy|np|cupy|array_api_strict|onnx|matplotlib|typing|abc|"
     r"collections\.abc|pathlib|os|io|dataclasses|enum|threading|contextlib|types)\..*"),
    (r"py:(class|obj|data)", r"(Any|Array|Shape|Callable|Iterator|Iterable|Sequence|Mapping|"
     r"Literal|Path|PathLike|ndarray|Generator|Figure|Axes|ModelProto|NodeProto|"
     r"TensorProto|Self|TypeAlias|ClassVar|Protocol|NamedTuple|DeviceLike|Logs)"),
    # type variables of generic functions (xpnn.distributed's T)
    (r"py:class", r"(xpnn\.[a-z_.]+\.)?[A-Z]"),
    # private names (a private base class, the hooks a subclass overrides) are not documented
    (r"py:.*", r"(.*\.)?_[A-Za-z].*"),
    # instance attributes named in their class's docstring, e.g. :attr:`best`
    (r"py:attr", r"[a-z_][a-z0-9_]*"),
]

# -- HTML --------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"xpnn {release}"
html_static_path: list[str] = []
html_show_sourcelink = False


# -- Docstring adjustments ---------------------------------------------------------------------
# The docstrings are reStructuredText written for reading in the source and in help(); three
# habits of that prose are not reST, and are mended here rather than in every docstring:
# |x| for absolute values (reST: a substitution), *shape for unpacking (reST: the start of
# emphasis) and a literal block that is the end of a docstring whose first line holds the text
# (inspect.cleandoc then leaves the block unindented).
_BARS = re.compile(r"(?<![\\`|])\|(?=[^\s|])([^|`\n]*?[^\s|\\])\|(?![`|])")
_UNPACKING = re.compile(r"(?<=[(\[,\s])(\*\*?)(?=[A-Za-z_][^*`\n]*?[,)\]])")
_LITERAL = re.compile(r"``.*?``")


def _mend_prose(line: str) -> str:
    def mend(text: str) -> str:
        text = _BARS.sub(r"\\|\1\\|", text)
        return _UNPACKING.sub(lambda m: "\\*" * len(m.group(1)), text)

    parts, last = [], 0
    for match in _LITERAL.finditer(line):
        parts.append(mend(line[last:match.start()]))
        parts.append(match.group(0))
        last = match.end()
    parts.append(mend(line[last:]))
    return "".join(parts)


def mend_docstring(app: Any, what: str, name: str, obj: Any, options: Any,
                   lines: list[str]) -> None:
    """Mend the prose of a docstring; literal blocks (after a line ending in ``::``) stay."""
    literal_base: int | None = None  # the indent of the paragraph that opened a literal block
    opened_at: int | None = None
    for index, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if opened_at is not None and stripped:
            if indent <= opened_at:  # flattened by cleandoc: indent this paragraph
                end = index
                while end < len(lines) and lines[end].strip():
                    lines[end] = "    " + lines[end]
                    end += 1
                continue
            literal_base, opened_at = opened_at, None
        if literal_base is not None:
            if not stripped or indent > literal_base:
                continue
            literal_base = None
        if stripped.endswith("::"):
            opened_at = indent
        lines[index] = _mend_prose(line)


def mend_signature(app: Any, what: str, name: str, obj: Any, options: Any, signature: str | None,
                   return_annotation: str | None) -> tuple[str | None, str | None] | None:
    """A dataclass field with a ``default_factory`` shows its default as ``<factory>``, which
    Sphinx cannot parse (it then splits the signature at every comma): show ``...``."""
    if signature and "<factory>" in signature:
        return signature.replace("<factory>", "..."), return_annotation
    return None


# -- Cross-references --------------------------------------------------------------------------
def _import_path(target: str) -> Any:
    """The object a dotted path names, importing the longest module prefix (``xpnn.device``
    is both a module and, in ``xpnn``, a function)."""
    parts = target.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            obj = getattr(obj, part)
        return obj
    raise AttributeError(target)


def resolve_reference(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve what Sphinx's lookup misses, or leave it to fail (nitpicky: an error).

    - ``xpnn.Dense``, a re-export, is documented once where it is defined
      (``xpnn.layers.dense.Dense``): follow the object to its defining module;
    - a short name in another module's namespace (``Backend.unfold`` in a docstring of
      ``backends/strided.py``, ``get_device``): accept the one documented object whose
      dotted name ends with it, as ``:meth:`.Backend.unfold``` would.
    """
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    target = node["reftarget"]
    canonical = None
    if target.startswith("xpnn."):
        try:
            obj = _import_path(target)
        except AttributeError:
            obj = None
        if inspect.ismodule(obj):
            canonical = obj.__name__
        elif inspect.isclass(obj) or inspect.isfunction(obj):
            canonical = f"{obj.__module__}.{obj.__qualname__}"
    if canonical is not None and canonical != target:
        return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                   canonical, node, contnode)
    if not node.get("refspecific"):
        suffix = "." + target.lstrip("~.")
        matches = [name for name in domain.objects if name.endswith(suffix)]
        if len(matches) == 1:  # "obj": a type alias in an annotation is documented as data
            return domain.resolve_xref(env, node["refdoc"], app.builder, "obj", matches[0],
                                       node, contnode)
    return None


# -- One line per module: the module-table directive --------------------------------------------
_TABLE = re.compile(r"^\.\. module-table::[^\n]*\n((?:[ \t]*\n|[ \t]+\S[^\n]*\n)*)", re.M)


def summary_of(module_name: str) -> str:
    """The first sentence of a module's docstring (a full stop after "et al.", "e.g." and
    "i.e." does not end it)."""
    doc = inspect.getdoc(importlib.import_module(module_name)) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    for match in re.finditer(r"\.(?=\s|$)", paragraph):
        if not re.search(r"(\bal|\be\.g|\bi\.e|\bcf)$", paragraph[:match.start()]):
            return paragraph[:match.end()]
    return paragraph


class ModuleTable(SphinxDirective):
    """``.. module-table::`` followed by dotted module names, one a line: a table of the modules
    with the first sentence of each docstring, and a hidden toctree of their pages."""

    has_content = True

    def run(self) -> list[Any]:
        """Parse the table and the toctree as reST in place of the directive."""
        names = [line.strip() for line in self.content if line.strip()]
        text = [".. list-table::", "   :widths: 35 65", ""]
        for name in names:
            text += [f"   * - :mod:`{name}`", f"     - {summary_of(name)}"]
        text += ["", ".. toctree::", "   :hidden:", ""]
        text += [f"   generated/{name}" for name in names]
        return self.parse_text_to_nodes("\n".join(text))


#: The body of a module's page where the plain ``automodule`` does not do: ``Model`` lists the
#: training verbs it inherits from ``Trainer`` (``fit``, ``predict``, ...), ``Sequential`` only
#: what it adds to ``Model``.
MODULE_PAGES = {
    "xpnn.model": """.. automodule:: xpnn.model
   :exclude-members: Sequential
   :inherited-members: Model

.. autoclass:: xpnn.model.Sequential
""",
}


def write_module_pages(app: Any) -> None:
    """Write docs/api/generated/<module>.rst for every module named in a module-table of
    docs/api/ (only where the content changed, so that incremental builds stay cheap), and
    remove the pages of modules no table names any more."""
    api = Path(app.srcdir) / "api"
    generated = api / "generated"
    generated.mkdir(exist_ok=True)
    names = [name for page in sorted(api.glob("*.rst"))
             for block in _TABLE.findall(page.read_text(encoding="utf-8"))
             for name in block.split()]
    for name in names:
        title = f"``{name}``"
        body = MODULE_PAGES.get(name, f".. automodule:: {name}\n")
        content = f"{title}\n{'=' * len(title)}\n\n{body}"
        stub = generated / f"{name}.rst"
        if not stub.exists() or stub.read_text(encoding="utf-8") != content:
            stub.write_text(content, encoding="utf-8")
    for stale in set(generated.glob("*.rst")) - {generated / f"{name}.rst" for name in names}:
        stale.unlink()


def setup(app: Any) -> None:
    """Connect the docstring and cross-reference hooks and the module-table directive."""
    app.connect("autodoc-process-docstring", mend_docstring)
    app.connect("autodoc-process-signature", mend_signature)
    app.connect("missing-reference", resolve_reference)
    app.connect("builder-inited", write_module_pages)
    app.add_directive("module-table", ModuleTable)
