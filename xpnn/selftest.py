"""``python -m xpnn test`` and :func:`xpnn.test`: the cross-backend test matrix, run against
the *installed* package from any directory.

The repository's ``tests/`` folder is installed as ``xpnn.tests``, so a wheel carries the
same matrix that ``pytest`` runs in a checkout: every layer, loss, optimizer, kernel and
model, gradient-checked and compared with the float64 NumPy references on each backend lane
(``numpy``, ``strict``, ``cupy``). It needs pytest (and hypothesis for the property tests;
both in the ``test`` extra); tests that need the checkout itself (the examples, the
benchmark harness) are skipped with that reason. At the end a table gives the passed,
failed and skipped tests of each lane, and the exit status is pytest's: 0 when nothing
failed.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

#: The backend lanes of the matrix (tests/conftest.py).
LANES = ("numpy", "strict", "cupy")


class LaneCounts:
    """A pytest plugin that counts each test's outcome by the lane it ran on ("host" for
    tests that take no lane), and the reasons lanes were skipped."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}
        self.reasons: dict[str, Counter[str]] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        """Count a test once: its failure or skip wherever it happened, else its pass."""
        if report.when != "call" and not (report.failed or report.skipped):
            return
        lane = dict(report.user_properties).get("lane", "host")
        outcome = "passed" if report.passed else "failed" if report.failed else "skipped"
        if outcome == "passed" and report.when != "call":
            return
        self.counts.setdefault(lane, Counter())[outcome] += 1
        if outcome == "skipped" and isinstance(report.longrepr, tuple):
            reason = str(report.longrepr[2]).removeprefix("Skipped: ")
            self.reasons.setdefault(lane, Counter())[reason] += 1

    def table(self) -> str:
        """One line per lane: passed, failed, skipped, and the commonest skip reason."""
        lines = ["lane      passed  failed  skipped"]
        for lane in (*LANES, "host"):
            counts = self.counts.get(lane)
            if not counts:
                continue
            line = (f"{lane:<8}{counts['passed']:>8}{counts['failed']:>8}"
                    f"{counts['skipped']:>9}")
            reasons = self.reasons.get(lane)
            if reasons and lane != "host":
                reason, count = reasons.most_common(1)[0]
                line += f"   ({count} skipped: {reason})"
            lines.append(line)
        return "\n".join(lines)


def test(backends: Sequence[str] | None = None, *, quick: bool = False,
         pytest_args: Sequence[str] = ()) -> int:
    """Run the installed test matrix; returns pytest's exit status (0: nothing failed).

    ``backends``: the lanes to run (``"numpy"``, ``"strict"``, ``"cupy"``; default every
    one, an unavailable one skipped with the reason). ``quick`` leaves out the tests marked
    slow (property-based searches, training runs, subprocesses). ``pytest_args`` go to
    pytest as they are (``["-x"]``, ``["-k", "conv"]``).
    """
    try:
        import pytest
    except ImportError:
        print("xpnn test needs pytest: pip install 'xpnn[test]' (or pytest hypothesis "
              "array-api-strict)", file=sys.stderr)
        return 4
    unknown = [name for name in backends or () if name not in LANES]
    if unknown:
        print(f"xpnn test: unknown backend {unknown}; choose from {LANES}", file=sys.stderr)
        return 4
    # the folder, not --pyargs: its conftest.py (the lanes, --backend) loads first then
    spec = importlib.util.find_spec("xpnn.tests")
    if spec is None or not spec.submodule_search_locations:
        print("xpnn test: this installation of xpnn has no test suite (xpnn.tests)",
              file=sys.stderr)
        return 4
    folder = spec.submodule_search_locations[0]
    args = [folder, "--rootdir", folder, "-p", "no:cacheprovider", "-q", "-rfE"]
    for name in backends or ():
        args += ["--backend", name]
    if quick:
        args += ["-m", "not slow"]
    counts = LaneCounts()
    status = int(pytest.main([*args, *pytest_args], plugins=[counts]))
    print("\n" + counts.table())
    print("xpnn test: " + ("passed" if status == 0 else "FAILED" if status == 1
                           else f"pytest exit status {status}"))
    return status
