"""``python -m xpnn test`` runs the installed test matrix from any directory and reports each
lane; ``xpnn.test`` is the same from Python."""

from __future__ import annotations

import subprocess
import sys

import pytest

from xpnn.selftest import LaneCounts


def _run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xpnn", "test", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_matrix_runs_from_another_directory_with_a_table_per_lane(tmp_path):
    run = _run(tmp_path, "--backend", "numpy", "--backend", "strict", "--quick", "--",
               "-k", "test_gradcheck and dense")
    assert run.returncode == 0, run.stdout + run.stderr
    table = run.stdout[run.stdout.index("lane      passed"):]
    rows = {line.split()[0]: line.split()[1:4] for line in table.splitlines()[1:]
            if line and not line.startswith("xpnn")}
    assert set(rows) >= {"numpy", "strict"} and "cupy" not in rows
    assert int(rows["numpy"][0]) > 0 and rows["numpy"][1] == "0"
    assert run.stdout.rstrip().endswith("xpnn test: passed")
    assert not (tmp_path / ".pytest_cache").exists()


def test_a_selection_without_tests_and_a_bad_lane_are_not_a_pass(tmp_path):
    run = _run(tmp_path, "--backend", "numpy", "--", "-k", "no_test_has_this_name")
    assert run.returncode == 5 and "pytest exit status 5" in run.stdout
    run = _run(tmp_path, "--backend", "tpu")
    assert run.returncode == 2 and "invalid choice: 'tpu'" in run.stderr


def test_lane_counts_count_each_test_once_by_lane():
    class Report:
        def __init__(self, when, outcome, lane=None, longrepr=None):
            self.when, self.user_properties = when, [("lane", lane)] if lane else []
            self.passed, self.failed = outcome == "passed", outcome == "failed"
            self.skipped, self.longrepr = outcome == "skipped", longrepr

    counts = LaneCounts()
    for report in (Report("setup", "passed", "numpy"), Report("call", "passed", "numpy"),
                   Report("teardown", "passed", "numpy"), Report("call", "failed", "strict"),
                   Report("setup", "skipped", "cupy", ("f", 1, "Skipped: no GPU here")),
                   Report("call", "passed")):
        counts.pytest_runtest_logreport(report)
    table = counts.table().splitlines()
    assert table[1].split() == ["numpy", "1", "0", "0"]
    assert table[2].split() == ["strict", "0", "1", "0"]
    assert table[3].startswith("cupy") and "(1 skipped: no GPU here)" in table[3]
    assert table[4].split() == ["host", "1", "0", "0"]
