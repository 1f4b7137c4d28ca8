"""The recurrent examples run (``--quick``) on every lane, print their key numbers and return
them from ``main()``."""

from __future__ import annotations

import runpy
import sys

import numpy as np
import pytest

from .paths import EXAMPLES, requires_repository

pytestmark = requires_repository



def run_example(monkeypatch, name: str, *args: str):
    monkeypatch.setattr(sys, "argv", [name, *args])
    return runpy.run_path(str(EXAMPLES / name), run_name="example")["main"]()


def test_char_rnn_quick(monkeypatch, capsys, lane):
    result = run_example(monkeypatch, "char_rnn.py", "--quick", "--device", lane.device)
    out = capsys.readouterr().out
    assert "--- temperature 0.5 ---" in out and "--- temperature 1.0 ---" in out
    assert len(result["loss"]) >= 1 and all(np.isfinite(result["loss"]))
    # two epochs already beat a uniform guess over the characters
    assert result["val_loss"][-1] < np.log(result["vocab_size"])
    for sample in result["samples"].values():
        assert sample.startswith("Shall I compare thee") and len(sample) == 20 + 40


def test_vanishing_gradients_quick(monkeypatch, tmp_path, capsys, lane):
    pytest.importorskip("matplotlib", reason="the figure needs matplotlib (xpnn[plot])")
    out = tmp_path / "vanishing.png"
    results = run_example(monkeypatch, "vanishing_gradients.py", "--quick", "--out", str(out),
                          "--device", lane.device)
    assert out.read_bytes().startswith(b"\x89PNG")
    assert set(results) == {"SimpleRNN", "LSTM", "GRU"}
    for result in results.values():
        assert 0.0 <= result["accuracy"] <= 1.0 and np.isfinite(result["mse"])
        assert result["norms_before"].shape == result["norms_after"].shape == (20,)
        assert np.all(result["norms_before"] > 0)
    text = capsys.readouterr().out
    assert "test MSE" in text and "before -> after training" in text


def test_char_transformer_quick(monkeypatch, tmp_path, capsys, lane):
    pytest.importorskip("matplotlib", reason="the attention maps need matplotlib (xpnn[plot])")
    out = tmp_path / "attention.png"
    result = run_example(monkeypatch, "char_transformer.py", "--quick", "--device", lane.device,
                         "--out", str(out))
    text = capsys.readouterr().out
    assert out.read_bytes().startswith(b"\x89PNG")
    assert "--- temperature 0.5 ---" in text and "--- temperature 1.0 ---" in text
    assert "  gpt " in text and "  lstm " in text and "  unigram " in text
    for name in ("gpt", "lstm"):
        run = result[name]
        assert run["epochs"] >= 1 and np.isfinite(run["val_loss"]) and np.isfinite(run["loss"])
        # a budget of seconds: near a uniform guess, and no worse than it by much
        assert run["val_loss"] < result["uniform"] + 0.5
    # the training text's character frequencies beat a uniform guess
    assert result["unigram"] < result["uniform"]
    for sample in result["samples"].values():
        assert sample.startswith("Shall I compare thee") and len(sample) == 20 + 40
