"""The textbook-figure examples run, draw their PNG, and show what their docstrings claim."""

from __future__ import annotations

import runpy
import sys

import pytest

from .paths import EXAMPLES, requires_repository

pytestmark = requires_repository



@pytest.fixture
def run_quick(monkeypatch, tmp_path):
    """Run an example with ``--quick --out <tmp>/figure.png`` and extra arguments; check the
    PNG and return what ``main()`` returned."""
    pytest.importorskip("matplotlib", reason="the figures need matplotlib (xpnn[plot])")

    def run(name: str, *args: str):
        out = tmp_path / "figure.png"
        monkeypatch.setattr(sys, "argv", [name, "--quick", "--out", str(out), *args])
        result = runpy.run_path(str(EXAMPLES / name), run_name="example")["main"]()
        assert out.read_bytes().startswith(b"\x89PNG"), f"{name} wrote no PNG"
        return result

    return run


def test_init_activations(run_quick):
    results = run_quick("init_activations.py")
    # N(0, 1) drives about half of the sigmoid activations to 0 or 1; Xavier saturates none
    assert results["sigmoid, N(0, 1)"]["saturated"] > 0.4
    assert results["sigmoid, Xavier"]["saturated"] < 0.01
    # ReLU: He keeps the spread from layer to layer, Xavier lets it shrink
    he, xavier = results["ReLU, He"]["std"], results["ReLU, Xavier"]["std"]
    assert 0.7 < he[-1] / he[0] < 1.5
    assert xavier[-1] / xavier[0] < 0.5


def test_loss_saturation(run_quick, capsys):
    updates = run_quick("loss_saturation.py")
    # 150 updates: cross-entropy gets below 0.1 in about 50, the quadratic loss not at all
    assert updates["cross-entropy"] is not None and updates["cross-entropy"] < 100
    assert updates["quadratic"] is None
    assert "not below 0.1 within 150 epochs" in capsys.readouterr().out


def test_optimizers_2d(run_quick, lane):
    final = run_quick("optimizers_2d.py", "--device", lane.device)
    start = (-7.0) ** 2 / 20 + 2.0**2  # f(-7, 2) = 6.45
    assert set(final) == {"SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam"}
    assert all(value < start for value in final.values()), final


def test_logic_gates(run_quick, capsys, lane):
    accuracy = run_quick("logic_gates.py", "--device", lane.device)
    assert accuracy["NOT"] == accuracy["AND"] == accuracy["OR"] == 1.0
    assert accuracy["XOR, one neuron"] <= 0.75  # no straight line separates XOR
    assert accuracy["XOR, 4 hidden units"] == 1.0
    assert "accuracy" in capsys.readouterr().out


def test_residual_depth_the_deep_plain_network_fails_where_the_residual_one_trains(run_quick):
    quick = run_quick("residual_depth.py")
    assert set(quick) == {("plain", 2), ("residual", 2), ("plain", 8), ("residual", 8)}
    # the degradation problem at a depth the CI can afford: 24 hidden layers, 10 epochs
    results = run_quick("residual_depth.py", "--depths", "4", "24", "--epochs", "10")
    assert results[("plain", 4)]["train_loss"] < 0.2
    assert results[("residual", 4)]["train_loss"] < 0.2
    assert results[("plain", 24)]["train_loss"] > 1.0  # deeper, yet worse on its training data
    assert results[("residual", 24)]["train_loss"] < 0.2
    assert results[("residual", 24)]["test_accuracy"] > 0.9
