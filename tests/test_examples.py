"""The examples run and do what their docstrings promise."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(monkeypatch, name: str, *args: str):
    monkeypatch.setattr(sys, "argv", [name, *args])
    namespace = runpy.run_path(str(EXAMPLES / name), run_name="example")
    return namespace["main"]()


def test_digits_mlp_reaches_95_percent_on_cpu(monkeypatch, capsys):
    pytest.importorskip("sklearn", reason="the digits ship with scikit-learn")
    accuracy = run_example(monkeypatch, "digits_mlp.py", "--device", "cpu")
    out = capsys.readouterr().out
    assert accuracy >= 0.95
    assert "Epoch 30/30" in out and "test accuracy:" in out and "Total params: 50,826" in out


def test_digits_mlp_runs_on_every_lane(monkeypatch, lane):
    pytest.importorskip("sklearn", reason="the digits ship with scikit-learn")
    assert run_example(monkeypatch, "digits_mlp.py", "--device", lane.device,
                       "--epochs", "3") > 0.8


def test_xor(monkeypatch, capsys, lane):
    assert run_example(monkeypatch, "xor.py", "--device", lane.device) == 1.0
    assert "1 XOR 0 = 1" in capsys.readouterr().out


def test_linear_regression_agrees_with_the_normal_equation(monkeypatch, capsys, lane):
    assert run_example(monkeypatch, "linear_regression.py", "--device", lane.device) < 5e-4
    assert "agree to 3 decimals" in capsys.readouterr().out
