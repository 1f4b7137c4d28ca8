"""The "careful NumPy" reference: the same networks and optimizers written by hand.

Everything is preallocated for the batch size; every matrix product is one BLAS call writing
into its buffer (``matmul(..., out=)``, transposes as views, no copies); ReLU and the
momentum update work in place; the dtype is float32 throughout. The first layer computes no
dL/dx (nobody needs it), like xpnn and PyTorch. The same code runs on CuPy (``xp=cupy``).

This is the floor an array-library framework can approach: whatever xpnn spends beyond it is
framework overhead.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from benchmarks.specs import AdamSpec, MLPSpec
from benchmarks.timing import Runner, Unavailable

Array = Any


class HandMLP:
    """A ReLU MLP ``sizes[0]-…-sizes[-1]`` trained by SGD with momentum μ, written by hand.

    ``loss`` is ``"softmax_crossentropy"`` (integer labels, mean over the batch) or
    ``"bce_logits"`` (one output, float targets of shape (N, 1), mean over the batch).
    Momentum is xpnn's form: v ← μv − ηg, w ← w + v, as four in-place passes
    (v *= μ; g *= η; v -= g; w += v).
    """

    def __init__(self, xp: Any, sizes: tuple[int, ...], batch_size: int, loss: str,
                 learning_rate: float, momentum: float, seed: int = 0) -> None:
        if loss not in ("softmax_crossentropy", "bce_logits"):
            raise ValueError(f"unknown loss {loss!r}")
        self.xp = xp
        self.loss = loss
        self.learning_rate = np.float32(learning_rate)
        self.momentum = np.float32(momentum)
        rng = np.random.default_rng(seed)
        f32 = np.float32
        pairs = list(itertools.pairwise(sizes))
        self.weights = [xp.asarray(rng.standard_normal((n_in, n_out), dtype=f32)
                                    * f32(math.sqrt(2.0 / n_in)))
                        for n_in, n_out in pairs]
        self.biases = [xp.zeros(n_out, dtype=f32) for _, n_out in pairs]
        self.params = [p for pair in zip(self.weights, self.biases, strict=True) for p in pair]
        self.grads = [xp.zeros_like(p) for p in self.params]
        self.velocity = [xp.zeros_like(p) for p in self.params]
        # activations[0] is the input batch; activations[i + 1] the output of layer i
        self.activations = [xp.empty((batch_size, n), dtype=f32) for n in sizes]
        # deltas[i] = dL/d(pre-activation of layer i), overwritten in place by the ReLU mask
        self.deltas = [xp.empty((batch_size, n_out), dtype=f32) for _, n_out in pairs]
        self.rows = xp.arange(batch_size)
        self.row_sums = xp.empty((batch_size, 1), dtype=f32)
        self.initial = [p.copy() for p in self.params]

    def reset(self) -> None:
        """Back to the initial weights and zero velocities."""
        for param, initial, velocity in zip(self.params, self.initial, self.velocity,
                                            strict=True):
            param[...] = initial
            velocity[...] = 0

    def gather(self, x: Array, y: Array, indices: Array) -> tuple[Array, Array]:
        """Copy the rows ``indices`` of x into the input buffer (one ``take``); return the
        input view and the batch targets."""
        xp = self.xp
        n = indices.shape[0]
        x_batch = self.activations[0][:n]
        xp.take(x, indices, axis=0, out=x_batch)
        return x_batch, xp.take(y, indices, axis=0)

    def train_step(self, x_batch: Array, y_batch: Array) -> Array:
        """Forward, backward and one momentum update on a gathered batch; returns the loss
        (a 0-d array: no host synchronisation)."""
        xp = self.xp
        n = x_batch.shape[0]
        last = len(self.weights) - 1
        acts = [a[:n] for a in self.activations]
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            out = acts[i + 1]
            xp.matmul(acts[i], weight, out=out)
            out += bias
            if i < last:
                xp.maximum(out, 0, out=out)
        delta = self.deltas[last][:n]
        loss = self._loss_and_gradient(acts[last + 1], y_batch, delta)
        for i in range(last, -1, -1):
            delta = self.deltas[i][:n]
            xp.matmul(acts[i].T, delta, out=self.grads[2 * i])
            xp.sum(delta, axis=0, out=self.grads[2 * i + 1])
            if i > 0:
                below = self.deltas[i - 1][:n]
                xp.matmul(delta, self.weights[i].T, out=below)
                xp.multiply(below, acts[i] > 0, out=below)
        self.update()
        return loss

    def update(self) -> None:
        """The momentum step on every parameter: four in-place passes each."""
        for param, grad, velocity in zip(self.params, self.grads, self.velocity, strict=True):
            velocity *= self.momentum
            grad *= self.learning_rate
            velocity -= grad
            param += velocity

    def _loss_and_gradient(self, logits: Array, y_batch: Array, delta: Array) -> Array:
        """The mean loss over the batch; writes dL/dlogits into ``delta``."""
        xp = self.xp
        n = logits.shape[0]
        scale = np.float32(1.0 / n)
        if self.loss == "softmax_crossentropy":
            rows = self.rows[:n]
            sums = self.row_sums[:n]
            xp.max(logits, axis=1, keepdims=True, out=sums)
            xp.subtract(logits, sums, out=delta)  # shifted logits
            picked = delta[rows, y_batch]  # a copy: (n,)
            xp.exp(delta, out=delta)
            xp.sum(delta, axis=1, keepdims=True, out=sums)
            loss = xp.mean(xp.log(sums[:, 0]) - picked)
            delta /= sums  # softmax
            delta[rows, y_batch] -= 1.0
            delta *= scale
            return loss
        # binary cross-entropy with logits z (one output): mean(max(z,0) − zy + log(1+e^−|z|))
        z = logits
        loss = xp.mean(xp.maximum(z, 0) - z * y_batch + xp.log1p(xp.exp(-xp.abs(z))))
        e = xp.exp(-xp.abs(z))
        sigmoid = xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        xp.subtract(sigmoid, y_batch, out=delta)
        delta *= scale
        return loss


class HandAdam:
    """Adam on a list of arrays with preallocated scratch, in xpnn's form
    w ← w − η_t m / (√v + ε̂) with η_t = η √(1 − β₂ᵗ) / (1 − β₁ᵗ), ε̂ = ε √(1 − β₂ᵗ)."""

    def __init__(self, xp: Any, params: list[Array], learning_rate: float = 1e-3,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8) -> None:
        self.xp = xp
        self.params = params
        self.m = [xp.zeros_like(p) for p in params]
        self.v = [xp.zeros_like(p) for p in params]
        self.scratch = xp.empty(max(p.size for p in params), dtype=params[0].dtype)
        self.learning_rate, self.beta_1, self.beta_2 = learning_rate, beta_1, beta_2
        self.epsilon = epsilon
        self.t = 0

    def step(self, grads: list[Array]) -> None:
        """One Adam update of every parameter (eight elementwise passes per array)."""
        xp = self.xp
        self.t += 1
        correction_2 = math.sqrt(1.0 - self.beta_2**self.t)
        step_size = np.float32(self.learning_rate * correction_2 / (1.0 - self.beta_1**self.t))
        eps_hat = np.float32(self.epsilon * correction_2)
        b1, b2 = np.float32(self.beta_1), np.float32(self.beta_2)
        for param, grad, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            tmp = self.scratch[:param.size].reshape(param.shape)
            m *= b1
            xp.multiply(grad, np.float32(1.0) - b1, out=tmp)
            m += tmp
            v *= b2
            xp.multiply(grad, grad, out=tmp)
            tmp *= np.float32(1.0) - b2
            v += tmp
            xp.sqrt(v, out=tmp)
            tmp += eps_hat
            xp.divide(m, tmp, out=tmp)
            tmp *= step_size
            param -= tmp


# -- runners -------------------------------------------------------------------------------
def array_module(device: str) -> tuple[Any, Any]:
    """The array module for an xpnn device name (NumPy for ``cpu``, CuPy for ``cuda[:N]``)
    and its synchronise function."""
    if device == "cpu":
        return np, lambda: None
    if device.startswith("cuda"):
        try:
            import cupy
        except ImportError:
            raise Unavailable("CuPy is not installed") from None
        index = int(device.partition(":")[2] or 0)
        cupy.cuda.Device(index).use()
        return cupy, cupy.cuda.Device(index).synchronize
    raise Unavailable(f"no hand-written version for device {device!r}")


def mlp_runner(spec: MLPSpec, x: np.ndarray, y: np.ndarray, device: str) -> Runner:
    """One epoch of the hand-written MLP per pass: a seeded permutation, then a gather
    (one ``take``) and a training step per batch; the epoch loss is summed on the device."""
    xp, sync = array_module(device)
    net = HandMLP(xp, spec.sizes, spec.batch_size, spec.loss, spec.learning_rate,
                  spec.momentum)
    x_dev, y_dev = xp.asarray(x), xp.asarray(y)
    batch = spec.batch_size

    def run(index: int) -> None:
        order = xp.asarray(np.random.default_rng(1000 + index).permutation(spec.samples))
        total = 0.0
        for start in range(0, spec.samples, batch):
            x_batch, y_batch = net.gather(x_dev, y_dev, order[start:start + batch])
            total = total + net.train_step(x_batch, y_batch) * x_batch.shape[0]
        float(total)

    return Runner(run, sync, net.reset)


def adam_runner(spec: AdamSpec, device: str) -> Runner:
    """``spec.steps`` hand-written Adam steps per pass."""
    xp, sync = array_module(device)
    values, grads = spec.arrays()
    params = [xp.asarray(v) for v in values]
    grads = [xp.asarray(g) for g in grads]
    optimizer = HandAdam(xp, params, spec.learning_rate)

    def run(index: int) -> None:
        for _ in range(spec.steps):
            optimizer.step(grads)

    return Runner(run, sync)


def products_runner(spec: MLPSpec, device: str) -> Runner:
    """Only the matrix products of an epoch of the MLP (forward xW, backward xᵀG and GWᵀ
    except the first layer's), into preallocated outputs: the BLAS ceiling that no
    implementation on this array library can beat."""
    xp, sync = array_module(device)
    rng = np.random.default_rng(0)
    batch = spec.batch_size

    def make(*shape: int) -> Array:
        return xp.asarray(rng.random(shape, dtype=np.float32))

    sizes = spec.sizes
    weights = [make(a, b) for a, b in spec.layer_pairs]
    grads = [xp.empty_like(w) for w in weights]
    acts = [make(batch, n) for n in sizes]
    deltas = [make(batch, b) for _, b in spec.layer_pairs]
    last = len(weights) - 1

    def run(index: int) -> None:
        for start in range(0, spec.samples, batch):
            n = min(batch, spec.samples - start)
            for i, weight in enumerate(weights):
                xp.matmul(acts[i][:n], weight, out=acts[i + 1][:n])
            for i in range(last, -1, -1):
                xp.matmul(acts[i][:n].T, deltas[i][:n], out=grads[i])
                if i > 0:
                    xp.matmul(deltas[i][:n], weights[i].T, out=deltas[i - 1][:n])

    return Runner(run, sync)
