"""Independent float64 NumPy references for the attention layers, written from the textbook
equations: layer normalisation through the plain node-by-node chain rule, GELU through
``math.erf`` and its derivative by hand, softmax along any axis through its full Jacobian,
and multi-head attention **head by head and sample by sample** (no stacked heads, no fused
projections; each softmax row through its Jacobian). These never call xpnn.

Attention parameters come in the layer's documented layout (W_q (D_q, H·d_k), head h in
columns h·d_k : (h + 1)·d_k, W_o (H·d_v, D_q), head h in rows h·d_v : (h + 1)·d_v).
"""

from __future__ import annotations

import math

import numpy as np

_erf = np.vectorize(math.erf)


# -- LayerNormalization -----------------------------------------------------------------------

def layer_norm_forward(x, gamma, beta, axes, epsilon=1e-5):
    """``axes`` counted with the batch axis; gamma/beta of those axes' sizes (or None)."""
    mean = x.mean(axis=axes, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(variance + epsilon)
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


def layer_norm_backward(x, gamma, g, axes, epsilon=1e-5):
    """Node by node: μ, c = x − μ, σ² = mean c², s = √(σ² + ε), x̂ = c/s, y = γ x̂ + β."""
    n = int(np.prod([x.shape[i] for i in axes]))
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    others = tuple(i for i in range(x.ndim) if i not in axes)
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    variance = (centred**2).mean(axis=axes, keepdims=True)
    std = np.sqrt(variance + epsilon)
    normalized = centred / std
    grad_normalized = g * (gamma.reshape(shape) if gamma is not None else 1.0)
    grad_std = -(grad_normalized * centred / std**2).sum(axis=axes, keepdims=True)
    grad_variance = grad_std / (2.0 * std)
    grad_centred = grad_normalized / std + (2.0 / n) * centred * grad_variance
    grad_mean = -grad_centred.sum(axis=axes, keepdims=True)
    grad_x = grad_centred + grad_mean / n
    params = {"gamma": (g * normalized).sum(axis=others).reshape([x.shape[i] for i in axes]),
              "beta": g.sum(axis=others).reshape([x.shape[i] for i in axes])}
    return grad_x, params


# -- GELU ---------------------------------------------------------------------------------------

def gelu_forward(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return x * 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def gelu_backward(x, g, approximate="none"):
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        u = c * (x + 0.044715 * x**3)
        du = c * (1.0 + 3 * 0.044715 * x**2)
        return g * (0.5 * (1.0 + np.tanh(u)) + 0.5 * x * du / np.cosh(u) ** 2)
    pdf = np.exp(-(x**2) / 2.0) / math.sqrt(2.0 * math.pi)
    cdf = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
    return g * (cdf + x * pdf)


# -- Softmax along any axis ---------------------------------------------------------------------

def softmax_axis(x, axis):
    moved = np.moveaxis(x, axis, -1)
    e = np.exp(moved - moved.max(axis=-1, keepdims=True))
    return np.moveaxis(e / e.sum(axis=-1, keepdims=True), -1, axis)


def softmax_axis_backward(x, g, axis):
    """Row by row through the full Jacobian J_ij = y_i (δ_ij − y_j)."""
    y = np.moveaxis(softmax_axis(x, axis), axis, -1)
    grad = np.moveaxis(g, axis, -1)
    out = np.empty_like(grad)
    for row in np.ndindex(y.shape[:-1]):
        jacobian = np.diag(y[row]) - np.outer(y[row], y[row])
        out[row] = jacobian.T @ grad[row]
    return np.moveaxis(out, -1, axis)


# -- multi-head attention, head by head ---------------------------------------------------------

def _allowed(batch, t_q, t_k, causal, mask):
    """allowed[n][i, j]: may query i of sample n see key j."""
    out = []
    for n in range(batch):
        allowed = np.ones((t_q, t_k), dtype=bool)
        if causal:
            for i in range(t_q):
                allowed[i, i + 1:] = False
        if mask is not None:
            allowed[:, ~mask[n].astype(bool)] = False
        out.append(allowed)
    return out


def _softmax_row(scores, allowed):
    """Softmax over the allowed entries of one row; all zero if none is allowed."""
    row = np.zeros_like(scores)
    if allowed.any():
        kept = scores[allowed]
        e = np.exp(kept - kept.max())
        row[allowed] = e / e.sum()
    return row


def _bias(p, name, columns):
    """The bias entries of ``columns``, or 0 for a layer without biases."""
    return p[name][columns] if name in p else 0.0


def mha_forward(query, value, key, p, heads, key_dim, value_dim, causal=False, mask=None):
    """y (batch, T_q, D_q) and the weights (batch, heads, T_q, T_k)."""
    batch, t_q, _ = query.shape
    t_k = key.shape[1]
    allowed = _allowed(batch, t_q, t_k, causal, mask)
    y = np.zeros((batch, t_q, p["output_kernel"].shape[1]))
    weights = np.zeros((batch, heads, t_q, t_k))
    for n in range(batch):
        y[n] = p.get("output_bias", 0.0)
        for h in range(heads):
            ck, cv = slice(h * key_dim, (h + 1) * key_dim), slice(h * value_dim,
                                                                  (h + 1) * value_dim)
            q = query[n] @ p["query_kernel"][:, ck] + _bias(p, "query_bias", ck)
            k = key[n] @ p["key_kernel"][:, ck] + _bias(p, "key_bias", ck)
            v = value[n] @ p["value_kernel"][:, cv] + _bias(p, "value_bias", cv)
            scores = q @ k.T / math.sqrt(key_dim)
            for i in range(t_q):
                weights[n, h, i] = _softmax_row(scores[i], allowed[n][i])
            y[n] += (weights[n, h] @ v) @ p["output_kernel"][cv, :]
    return y, weights


def mha_backward(query, value, key, p, g, heads, key_dim, value_dim, causal=False,
                 mask=None, grad_weights=None):
    """(dL/dquery, dL/dvalue, dL/dkey, {param: grad}) for dL/dy = g (and dL/dweights)."""
    batch, t_q, _ = query.shape
    t_k = key.shape[1]
    allowed = _allowed(batch, t_q, t_k, causal, mask)
    grads = {name: np.zeros_like(value) for name, value in p.items()}
    d_query, d_value, d_key = np.zeros_like(query), np.zeros_like(value), np.zeros_like(key)
    for n in range(batch):
        if "output_bias" in grads:
            grads["output_bias"] += g[n].sum(axis=0)
        for h in range(heads):
            ck, cv = slice(h * key_dim, (h + 1) * key_dim), slice(h * value_dim,
                                                                  (h + 1) * value_dim)
            q = query[n] @ p["query_kernel"][:, ck] + _bias(p, "query_bias", ck)
            k = key[n] @ p["key_kernel"][:, ck] + _bias(p, "key_bias", ck)
            v = value[n] @ p["value_kernel"][:, cv] + _bias(p, "value_bias", cv)
            scores = q @ k.T / math.sqrt(key_dim)
            a = np.stack([_softmax_row(scores[i], allowed[n][i]) for i in range(t_q)])
            o = a @ v
            grads["output_kernel"][cv, :] += o.T @ g[n]
            d_o = g[n] @ p["output_kernel"][cv, :].T
            d_a = d_o @ v.T
            if grad_weights is not None:
                d_a = d_a + grad_weights[n, h]
            d_v = a.T @ d_o
            d_scores = np.stack([(np.diag(a[i]) - np.outer(a[i], a[i])) @ d_a[i]
                                 for i in range(t_q)])
            d_q = d_scores @ k / math.sqrt(key_dim)
            d_k = d_scores.T @ q / math.sqrt(key_dim)
            for name, rows, d_proj, cols in (("query", query[n], d_q, ck),
                                             ("key", key[n], d_k, ck),
                                             ("value", value[n], d_v, cv)):
                grads[f"{name}_kernel"][:, cols] += rows.T @ d_proj
                if f"{name}_bias" in grads:
                    grads[f"{name}_bias"][cols] += d_proj.sum(axis=0)
            d_query[n] += d_q @ p["query_kernel"][:, ck].T
            d_key[n] += d_k @ p["key_kernel"][:, ck].T
            d_value[n] += d_v @ p["value_kernel"][:, cv].T
    return d_query, d_value, d_key, grads


def sinusoids(length, dim):
    """P[t, 2i] = sin(t / 10000^{2i/dim}), P[t, 2i + 1] = cos(t / 10000^{2i/dim})."""
    table = np.zeros((length, dim))
    for t in range(length):
        for j in range(dim):
            angle = t / 10000.0 ** (2 * (j // 2) / dim)
            table[t, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return table
