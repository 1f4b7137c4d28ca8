"""Where the test suite runs from: the repository checkout (``pytest``) or the installed
package (``python -m xpnn test``, which runs this folder as ``xpnn.tests``). Tests that need
what only the checkout has — the examples, the benchmark harness, the documentation — are marked
``requires_repository`` and skipped, with that reason, in an installed package."""

from __future__ import annotations

from pathlib import Path

import pytest

#: The repository root, when the tests run from a checkout.
REPOSITORY = Path(__file__).resolve().parent.parent
EXAMPLES = REPOSITORY / "examples"
BENCHMARKS = REPOSITORY / "benchmarks"
DOCS = REPOSITORY / "docs"
#: Whether the examples, the benchmark harness and the documentation sources are at hand.
IN_REPOSITORY = EXAMPLES.is_dir() and BENCHMARKS.is_dir() and (DOCS / "conf.py").is_file()

requires_repository = pytest.mark.skipif(
    not IN_REPOSITORY, reason="needs the repository checkout (examples/, benchmarks/, docs/); "
    "the installed package ships the library and its test matrix only")
