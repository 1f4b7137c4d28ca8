"""The benchmark harness runs (a smoke test: no timings are asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_quick_benchmark_writes_its_table_and_json(tmp_path):
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "tiny", "--only", "adam10m",
         "--only", "lenet",
         "--device", "cpu", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "tiny" in run.stdout and "adam10m" in run.stdout and "targets:" in run.stdout
    assert "cpu     lenet    xpnn" in run.stdout
    results = json.loads(out.read_text())
    assert results["machine"] and "peaks" in json.dumps(results)
