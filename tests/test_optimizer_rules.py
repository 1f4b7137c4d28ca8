"""Each optimizer, five steps on every lane, against its textbook rule written in NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn

from .tolerances import PARITY


def _reference(name, w, grads, lr, decay_mask):
    w = w.copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            w = w - lr * g
        elif name == "momentum":
            m = 0.9 * m - lr * g
            w = w + m
        elif name == "nesterov":
            m = 0.9 * m - lr * g
            w = w + 0.9 * m - lr * g
        elif name == "adagrad":
            v = v + g**2
            w = w - lr * g / (np.sqrt(v) + 1e-7)
        elif name == "rmsprop":
            v = 0.9 * v + 0.1 * g**2
            w = w - lr * g / (np.sqrt(v) + 1e-7)
        else:  # adam, adamw
            if name == "adamw" and decay_mask:
                w = w - lr * 0.01 * w
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g**2
            m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
            w = w - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    return w


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
                                  "adamw"])
def test_five_steps_match_the_textbook_rule(lane, name, dtype, rng):
    lr = 0.1
    optimizer = {"sgd": xpnn.SGD, "momentum": xpnn.Momentum, "nesterov": xpnn.Nesterov,
                 "adagrad": xpnn.AdaGrad, "rmsprop": xpnn.RMSProp, "adam": xpnn.Adam,
                 "adamw": xpnn.AdamW}[name](lr)
    start = {"k": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    params = [xpnn.Parameter("k", lane.asarray(start["k"].copy(), dtype), regularizable=True),
              xpnn.Parameter("b", lane.asarray(start["b"].copy(), dtype), regularizable=False)]
    optimizer.build(params, lane.backend)
    grads = {key: [rng.standard_normal(value.shape) for _ in range(5)]
             for key, value in start.items()}
    for step in range(5):
        for param in params:
            param.grad = lane.asarray(grads[param.name][step], dtype)
        optimizer.step(params)
    for param in params:
        expected = _reference(name, start[param.name], grads[param.name], lr,
                              param.regularizable)
        lane.assert_close(param.value, expected, dtype, tolerances=PARITY, what=name)
