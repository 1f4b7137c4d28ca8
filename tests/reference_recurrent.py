"""Independent float64 NumPy references for the recurrent layers, Embedding and the
sequence loss, written from the textbook equations one gate at a time (no fused matrices,
no stacking: each step accumulates its own parameter gradients).

Parameters come in the layers' documented fused layout (gate blocks along the last axis:
SimpleRNN one, LSTM i, f, g, o, GRU z, r, n) and are split into per-gate matrices here.
Every backward takes ``grad_h`` (batch, time, units), dL/dh_t from the outputs at every
step (zero where none was taken), plus the gradients of the final state, and returns
``(dx, {param: grad}, initial state grads, [dL/dh_t for each t])``. These never call xpnn.
"""

from __future__ import annotations

import numpy as np

from .reference import softmax


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))  # the textbook form (inputs here are moderate)


def _blocks(array: np.ndarray, count: int) -> list[np.ndarray]:
    return np.split(array, count, axis=-1)


# -- SimpleRNN -------------------------------------------------------------------------------

ACTIVATIONS = {
    "tanh": (np.tanh, lambda a: 1.0 / np.cosh(a) ** 2),
    "sigmoid": (sigmoid, lambda a: sigmoid(a) * (1.0 - sigmoid(a))),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a: (a > 0).astype(np.float64)),
    "linear": (lambda a: a, np.ones_like),
}


def rnn_forward(x, p, h0=None, activation="tanh"):
    """All hidden states (batch, time, units) and the pre-activations."""
    phi, _ = ACTIVATIONS[activation]
    batch, steps, _ = x.shape
    h = np.zeros((batch, p["bias"].size)) if h0 is None else h0
    hs, pre = [], []
    for t in range(steps):
        a = x[:, t] @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"]
        h = phi(a)
        hs.append(h)
        pre.append(a)
    return np.stack(hs, axis=1), pre


def rnn_backward(x, p, grad_h, grad_h_last=None, h0=None, activation="tanh"):
    _, dphi = ACTIVATIONS[activation]
    hs, pre = rnn_forward(x, p, h0, activation)
    batch, steps, _ = x.shape
    units = p["bias"].size
    h_prev = [np.zeros((batch, units)) if h0 is None else h0] + [hs[:, t] for t in
                                                                 range(steps - 1)]
    grads = {name: np.zeros_like(value) for name, value in p.items()}
    dx = np.zeros_like(x)
    carry = np.zeros((batch, units)) if grad_h_last is None else grad_h_last.copy()
    state_grads = [None] * steps
    for t in reversed(range(steps)):
        dh = carry + grad_h[:, t]
        state_grads[t] = dh
        da = dh * dphi(pre[t])
        grads["kernel"] += x[:, t].T @ da
        grads["recurrent_kernel"] += h_prev[t].T @ da
        grads["bias"] += da.sum(axis=0)
        dx[:, t] = da @ p["kernel"].T
        carry = da @ p["recurrent_kernel"].T
    return dx, grads, (carry,), np.stack(state_grads, axis=1)


# -- LSTM ------------------------------------------------------------------------------------

def lstm_forward(x, p, h0=None, c0=None):
    """All hidden states, the final cell state and per-step intermediates."""
    batch, steps, _ = x.shape
    units = p["bias"].size // 4
    W = _blocks(p["kernel"], 4)
    U = _blocks(p["recurrent_kernel"], 4)
    b = _blocks(p["bias"], 4)
    h = np.zeros((batch, units)) if h0 is None else h0
    c = np.zeros((batch, units)) if c0 is None else c0
    hs, steps_cache = [], []
    for t in range(steps):
        i, f, g, o = (x[:, t] @ W[k] + h @ U[k] + b[k] for k in range(4))
        i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
        c_prev, h_prev = c, h
        c = f * c_prev + i * g
        h = o * np.tanh(c)
        hs.append(h)
        steps_cache.append((h_prev, c_prev, i, f, g, o, c))
    return np.stack(hs, axis=1), c, steps_cache


def lstm_backward(x, p, grad_h, grad_h_last=None, grad_c_last=None, h0=None, c0=None):
    _, _, cache = lstm_forward(x, p, h0, c0)
    batch, steps, _ = x.shape
    units = p["bias"].size // 4
    W = _blocks(p["kernel"], 4)
    U = _blocks(p["recurrent_kernel"], 4)
    grad_W = [np.zeros_like(w) for w in W]
    grad_U = [np.zeros_like(u) for u in U]
    grad_b = [np.zeros(units) for _ in range(4)]
    dx = np.zeros_like(x)
    dh_next = np.zeros((batch, units)) if grad_h_last is None else grad_h_last.copy()
    dc_next = np.zeros((batch, units)) if grad_c_last is None else grad_c_last.copy()
    state_grads = [None] * steps
    for t in reversed(range(steps)):
        h_prev, c_prev, i, f, g, o, c = cache[t]
        dh = dh_next + grad_h[:, t]
        state_grads[t] = dh
        dc = dc_next + dh * o * (1.0 - np.tanh(c) ** 2)
        d_pre = [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g**2),
                 dh * np.tanh(c) * o * (1 - o)]
        dh_next = np.zeros_like(dh)
        for k in range(4):
            grad_W[k] += x[:, t].T @ d_pre[k]
            grad_U[k] += h_prev.T @ d_pre[k]
            grad_b[k] += d_pre[k].sum(axis=0)
            dx[:, t] += d_pre[k] @ W[k].T
            dh_next += d_pre[k] @ U[k].T
        dc_next = dc * f
    grads = {"kernel": np.concatenate(grad_W, axis=1),
             "recurrent_kernel": np.concatenate(grad_U, axis=1),
             "bias": np.concatenate(grad_b)}
    return dx, grads, (dh_next, dc_next), np.stack(state_grads, axis=1)


# -- GRU (reset after) -----------------------------------------------------------------------

def gru_forward(x, p, h0=None):
    batch, steps, _ = x.shape
    units = p["bias"].size // 3
    W = _blocks(p["kernel"], 3)
    U = _blocks(p["recurrent_kernel"], 3)
    b = _blocks(p["bias"], 3)
    bu = _blocks(p["recurrent_bias"], 3)
    h = np.zeros((batch, units)) if h0 is None else h0
    hs, cache = [], []
    for t in range(steps):
        z = sigmoid(x[:, t] @ W[0] + b[0] + h @ U[0] + bu[0])
        r = sigmoid(x[:, t] @ W[1] + b[1] + h @ U[1] + bu[1])
        q_n = h @ U[2] + bu[2]
        n = np.tanh(x[:, t] @ W[2] + b[2] + r * q_n)
        cache.append((h, z, r, n, q_n))
        h = z * h + (1.0 - z) * n
        hs.append(h)
    return np.stack(hs, axis=1), cache


def gru_backward(x, p, grad_h, grad_h_last=None, h0=None):
    _, cache = gru_forward(x, p, h0)
    batch, steps, _ = x.shape
    units = p["bias"].size // 3
    W = _blocks(p["kernel"], 3)
    U = _blocks(p["recurrent_kernel"], 3)
    names = ("kernel", "recurrent_kernel", "bias", "recurrent_bias")
    parts = {name: [np.zeros_like(block) for block in _blocks(p[name], 3)] for name in names}
    dx = np.zeros_like(x)
    dh_next = np.zeros((batch, units)) if grad_h_last is None else grad_h_last.copy()
    state_grads = [None] * steps
    for t in reversed(range(steps)):
        h_prev, z, r, n, q_n = cache[t]
        dh = dh_next + grad_h[:, t]
        state_grads[t] = dh
        da_n = dh * (1.0 - z) * (1.0 - n**2)
        da_z = dh * (h_prev - n) * z * (1.0 - z)
        da_r = da_n * q_n * r * (1.0 - r)
        d_input = [da_z, da_r, da_n]
        d_recurrent = [da_z, da_r, da_n * r]
        dh_next = dh * z
        for k in range(3):
            parts["kernel"][k] += x[:, t].T @ d_input[k]
            parts["bias"][k] += d_input[k].sum(axis=0)
            parts["recurrent_kernel"][k] += h_prev.T @ d_recurrent[k]
            parts["recurrent_bias"][k] += d_recurrent[k].sum(axis=0)
            dx[:, t] += d_input[k] @ W[k].T
            dh_next += d_recurrent[k] @ U[k].T
    grads = {name: np.concatenate(value, axis=-1) for name, value in parts.items()}
    return dx, grads, (dh_next,), np.stack(state_grads, axis=1)


# -- Embedding and the masked sequence loss --------------------------------------------------

def embedding_backward(ids, vocab_size, g):
    grad = np.zeros((vocab_size, g.shape[-1]))
    for position in np.ndindex(ids.shape):
        grad[ids[position]] += g[position]
    return grad


def masked_softmax_ce(z, labels, ignore_index):
    """Mean over the rows whose label is not ``ignore_index``; gradient 0 on the others."""
    kept = labels != ignore_index
    probs = softmax(z)
    count = max(int(kept.sum()), 1)
    value = -sum(np.log(probs[row][labels[row]]) for row in zip(*np.nonzero(kept),
                                                                   strict=True)) / count
    target = np.zeros_like(z)
    for row in zip(*np.nonzero(kept), strict=True):
        target[row][labels[row]] = 1.0
    grad = (probs - target) * kept[..., None] / count
    return value, grad
