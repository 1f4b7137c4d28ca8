"""Independent float64 NumPy references for the convolution and pooling layers.

They loop over *output positions* (xpnn's kernels loop over taps) and never call xpnn.
``pads`` is ((top, bottom), (left, right)).
"""

from __future__ import annotations

import numpy as np


def output_size(size, pads, span, stride):
    return (size + pads[0] + pads[1] - span) // stride + 1


def _geometry(x, kernel, stride, pads, dilation):
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    out = tuple(output_size(n, p, s_, st) for n, p, s_, st in
                zip(x.shape[2:], pads, span, stride, strict=True))
    return span, out


def _patch(padded, i, j, kernel, stride, dilation):
    """(N, C, k_h, k_w): the inputs output position (i, j) reads."""
    top, left = i * stride[0], j * stride[1]
    return padded[:, :, top:top + dilation[0] * (kernel[0] - 1) + 1:dilation[0],
                  left:left + dilation[1] * (kernel[1] - 1) + 1:dilation[1]]


def conv2d_forward(x, weight, bias, stride=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1)):
    kernel = weight.shape[2:]
    _, (out_h, out_w) = _geometry(x, kernel, stride, pads, dilation)
    padded = np.pad(x, ((0, 0), (0, 0), *pads))
    out = np.zeros((x.shape[0], weight.shape[0], out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            patch = _patch(padded, i, j, kernel, stride, dilation)
            out[:, :, i, j] = np.einsum("nchw,fchw->nf", patch, weight)
    return out if bias is None else out + bias[None, :, None, None]


def conv2d_backward(x, weight, g, stride=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1)):
    """(dL/dx, {"kernel": dL/dW, "bias": dL/db}) for G = g."""
    kernel = weight.shape[2:]
    _, (out_h, out_w) = _geometry(x, kernel, stride, pads, dilation)
    padded = np.pad(x, ((0, 0), (0, 0), *pads))
    grad_padded = np.zeros_like(padded)
    grad_weight = np.zeros_like(weight)
    for i in range(out_h):
        for j in range(out_w):
            patch = _patch(padded, i, j, kernel, stride, dilation)
            grad_patch = _patch(grad_padded, i, j, kernel, stride, dilation)  # a view
            grad_patch += np.einsum("nf,fchw->nchw", g[:, :, i, j], weight)
            grad_weight += np.einsum("nf,nchw->fchw", g[:, :, i, j], patch)
    (top, _), (left, _) = pads
    grad_x = grad_padded[:, :, top:top + x.shape[2], left:left + x.shape[3]]
    return grad_x, {"kernel": grad_weight, "bias": g.sum(axis=(0, 2, 3))}


def max_pool_forward(x, size, stride, pads=((0, 0), (0, 0))):
    return _max_pool(x, size, stride, pads)[0]


def max_pool_backward(x, g, size, stride, pads=((0, 0), (0, 0))):
    """Each output's gradient goes to the first maximal input of its window."""
    _, winners = _max_pool(x, size, stride, pads)
    padded_shape = (x.shape[0], x.shape[1], x.shape[2] + sum(pads[0]), x.shape[3] + sum(pads[1]))
    grad_padded = np.zeros(padded_shape)
    for (i, j), winner in winners.items():
        rows, cols = np.unravel_index(winner, size)
        for n in range(x.shape[0]):
            for c in range(x.shape[1]):
                grad_padded[n, c, i * stride[0] + rows[n, c], j * stride[1] + cols[n, c]] += (
                    g[n, c, i, j])
    (top, _), (left, _) = pads
    return grad_padded[:, :, top:top + x.shape[2], left:left + x.shape[3]]


def _max_pool(x, size, stride, pads):
    _, (out_h, out_w) = _geometry(x, size, stride, pads, (1, 1))
    padded = np.pad(x, ((0, 0), (0, 0), *pads), constant_values=-np.inf)
    out = np.zeros((*x.shape[:2], out_h, out_w))
    winners = {}
    for i in range(out_h):
        for j in range(out_w):
            window = _patch(padded, i, j, size, stride, (1, 1)).reshape(*x.shape[:2], -1)
            winners[i, j] = np.argmax(window, axis=-1)
            out[:, :, i, j] = window.max(axis=-1)
    return out, winners


def avg_pool_forward(x, size, stride, pads=((0, 0), (0, 0))):
    """The mean of the real (not padding) pixels of each window."""
    _, (out_h, out_w) = _geometry(x, size, stride, pads, (1, 1))
    padded = np.pad(x, ((0, 0), (0, 0), *pads))
    real = np.pad(np.ones(x.shape[2:]), pads)
    out = np.zeros((*x.shape[:2], out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            count = _patch(real[None, None], i, j, size, stride, (1, 1)).sum()
            out[:, :, i, j] = _patch(padded, i, j, size, stride, (1, 1)).sum(axis=(2, 3)) / count
    return out


def avg_pool_backward(x, g, size, stride, pads=((0, 0), (0, 0))):
    _, (out_h, out_w) = _geometry(x, size, stride, pads, (1, 1))
    real = np.pad(np.ones(x.shape[2:]), pads)
    grad_padded = np.zeros((*x.shape[:2], *real.shape))
    for i in range(out_h):
        for j in range(out_w):
            count = _patch(real[None, None], i, j, size, stride, (1, 1)).sum()
            _patch(grad_padded, i, j, size, stride, (1, 1))[...] += (
                g[:, :, i, j, None, None] / count)
    (top, _), (left, _) = pads
    return grad_padded[:, :, top:top + x.shape[2], left:left + x.shape[3]]


def batchnorm2d_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    return gamma[None, :, None, None] * (x - mean) / np.sqrt(var + eps) + beta[None, :, None, None]


def batchnorm2d_backward(x, gamma, g, eps=1e-5):
    """Per channel, through the textbook graph (as tests/reference.py does for features)."""
    from .reference import batchnorm_backward

    channels = x.shape[1]
    as_rows = np.moveaxis(x, 1, -1).reshape(-1, channels)
    g_rows = np.moveaxis(g, 1, -1).reshape(-1, channels)
    grad_rows, grads = batchnorm_backward(as_rows, gamma, g_rows, eps)
    grad_x = np.moveaxis(grad_rows.reshape(x.shape[0], *x.shape[2:], channels), -1, 1)
    return grad_x, grads
