"""Independent float64 NumPy references for every layer and loss, from textbook formulas.

These never call xpnn: they are what the lanes are compared against.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))  # e^{-log(1 + e^{-x})}: not xpnn's tanh form


def softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


# -- layers: forward(x, params) and backward(x, params, g) -> (dx, {param: grad}) ------------

def dense_forward(x, kernel, bias):
    return x @ kernel + bias


def dense_backward(x, kernel, bias, g):
    x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    return g @ kernel.T, {"kernel": x2.T @ g2, "bias": g2.sum(axis=0)}


def sigmoid_backward(x, g):
    s = sigmoid(x)
    return g * s * (1.0 - s)


def tanh_backward(x, g):
    return g / np.cosh(x) ** 2


def relu_backward(x, g):
    return g * (x > 0)


def leaky_relu_forward(x, alpha):
    return np.where(x > 0, x, alpha * x)


def leaky_relu_backward(x, g, alpha):
    return g * np.where(x > 0, 1.0, alpha)


def softmax_backward(x, g):
    """Through the full Jacobian J_ij = y_i (δ_ij − y_j), row by row."""
    y = softmax(x)
    out = np.empty_like(g)
    for row in np.ndindex(y.shape[:-1]):
        jacobian = np.diag(y[row]) - np.outer(y[row], y[row])
        out[row] = jacobian.T @ g[row]
    return out


# -- losses: value(p, y) and grad(p, y) --------------------------------------------------

def mse(p, y):
    return 0.5 * np.mean((p - y) ** 2)


def mse_grad(p, y):
    return (p - y) / p.size


def bce(p, y, eps=1e-7):
    q = np.clip(p, eps, 1 - eps)
    return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))


def bce_grad(p, y):
    return (-(y / p) + (1 - y) / (1 - p)) / p.size


def bce_logits(z, y):
    s = sigmoid(z)
    return -np.mean(y * np.log(s) + (1 - y) * np.log1p(-s))


def bce_logits_grad(z, y):
    return (sigmoid(z) - y) / z.size


def one_hot(labels, classes):
    return np.eye(classes)[labels]


def cce(p, y):
    rows = p.size // p.shape[-1]
    return -np.sum(y * np.log(p)) / rows


def cce_grad(p, y):
    rows = p.size // p.shape[-1]
    return -y / p / rows


def softmax_ce(z, y):
    rows = z.size // z.shape[-1]
    return -np.sum(y * np.log(softmax(z))) / rows


def softmax_ce_grad(z, y):
    rows = z.size // z.shape[-1]
    return (softmax(z) - y) / rows


def batchnorm_forward(x, gamma, beta, epsilon=1e-5):
    """Training mode: statistics over every axis but the last."""
    axes = tuple(range(x.ndim - 1))
    return gamma * (x - x.mean(axes)) / np.sqrt(x.var(axes) + epsilon) + beta


def batchnorm_backward(x, gamma, g, epsilon=1e-5):
    """Training mode, one node of the normalisation graph at a time (no simplification)."""
    axes = tuple(range(x.ndim - 1))
    m = x.size // x.shape[-1]
    mean = x.mean(axes)
    centred = x - mean
    variance = (centred**2).mean(axes)
    std = np.sqrt(variance + epsilon)
    normalized = centred / std
    grad_normalized = g * gamma
    grad_std = -(grad_normalized * centred / std**2).sum(axes)
    grad_variance = grad_std / (2.0 * std)
    grad_centred = grad_normalized / std + (2.0 / m) * centred * grad_variance
    grad_mean = -grad_centred.sum(axes)
    grad_x = grad_centred + grad_mean / m
    return grad_x, {"gamma": (g * normalized).sum(axes), "beta": g.sum(axes)}
