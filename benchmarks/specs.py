"""What each benchmark trains: network sizes, batch, data, and its FLOP count.

The data is random and MNIST-shaped (inputs uniform in [0, 1), integer labels); only the
shapes matter for speed. Every implementation of a case trains on the same arrays.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MLPSpec:
    """A ReLU MLP ``sizes[0]-…-sizes[-1]`` trained for one epoch of ``samples`` samples by
    SGD with momentum, in batches of ``batch_size`` (the last one may be smaller).

    ``loss`` is ``"softmax_crossentropy"`` (integer labels) or ``"bce_logits"`` (one output,
    0/1 float targets of shape (N, 1)).
    """

    sizes: tuple[int, ...]
    batch_size: int
    samples: int
    loss: str = "softmax_crossentropy"
    learning_rate: float = 0.01
    momentum: float = 0.9

    @property
    def steps(self) -> int:
        """Optimizer steps per epoch."""
        return math.ceil(self.samples / self.batch_size)

    @property
    def parameters(self) -> int:
        """The number of trainable scalars (weights and biases)."""
        return sum(a * b + b for a, b in self.layer_pairs)

    @property
    def layer_pairs(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of each Dense layer."""
        return list(itertools.pairwise(self.sizes))

    def epoch_flops(self) -> float:
        """Matrix-product FLOPs of one training epoch by the usual convention
        6·N·Σ i·o (the issue's, and the common "6 × parameters × samples" of MFU figures).

        Per sample and Dense layer of shape (i, o): forward z = xW is 2·i·o, backward
        dL/dW = xᵀG is 2·i·o and dL/dx = GWᵀ is 2·i·o. Bias adds, activations, the loss and
        the optimizer are not counted (O(N·o) and O(parameters): under 1 %). The first
        layer's dL/dx is counted although no implementation computes it: see
        :meth:`epoch_flops_computed`.
        """
        return 6.0 * float(self.samples) * sum(a * b for a, b in self.layer_pairs)

    def epoch_flops_computed(self) -> float:
        """The FLOPs actually computed: N·(6·Σ i·o − 2·i₁·o₁), without the first layer's
        dL/dx (0.80 × :meth:`epoch_flops` for 784-512-512-10)."""
        products = sum(a * b for a, b in self.layer_pairs)
        first = self.layer_pairs[0][0] * self.layer_pairs[0][1]
        return float(self.samples) * (6.0 * products - 2.0 * first)

    def data(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Random inputs (samples, sizes[0]) in [0, 1) and matching targets, float32."""
        rng = np.random.default_rng(seed)
        x = rng.random((self.samples, self.sizes[0]), dtype=np.float32)
        if self.loss == "softmax_crossentropy":
            y = rng.integers(0, self.sizes[-1], size=self.samples, dtype=np.int64)
        else:
            y = rng.integers(0, 2, size=(self.samples, 1)).astype(np.float32)
        return x, y


@dataclass(frozen=True)
class AdamSpec:
    """``steps`` Adam steps on parameters of ``shapes`` with fixed random gradients."""

    shapes: tuple[tuple[int, ...], ...]
    steps: int
    learning_rate: float = 1e-3

    @property
    def parameters(self) -> int:
        """The number of scalars updated per step."""
        return sum(math.prod(shape) for shape in self.shapes)

    def min_bytes_per_step(self) -> float:
        """The least memory traffic of one step: read w, g, m, v and write w, m, v
        (7 float32 per scalar)."""
        return 7.0 * 4.0 * self.parameters

    def arrays(self, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Fresh parameter values and gradients (float32, normal), one of each per shape."""
        rng = np.random.default_rng(seed)
        values = [rng.standard_normal(shape, dtype=np.float32) for shape in self.shapes]
        grads = [rng.standard_normal(shape, dtype=np.float32) for shape in self.shapes]
        return values, grads


@dataclass(frozen=True)
class LeNetSpec:
    """The issue's CNN on NCHW (N, 1, 28, 28) inputs, trained for one epoch of ``samples``
    samples in batches of ``batch_size`` by softmax cross-entropy and SGD with momentum::

        Conv 1→32 3×3 pad 1, ReLU, MaxPool 2,     (32, 28, 28) -> (32, 14, 14)
        Conv 32→64 3×3 pad 1, ReLU, MaxPool 2,    (64, 14, 14) -> (64, 7, 7)
        Flatten, Dense 3136→128, ReLU, Dense 128→10
    """

    samples: int
    batch_size: int = 64
    learning_rate: float = 0.01
    momentum: float = 0.9

    #: (in channels, out channels) of the two 3×3 convolutions, and the Dense sizes.
    CONVS = ((1, 32), (32, 64))
    DENSE = (64 * 7 * 7, 128, 10)
    #: One input image, (C, H, W).
    IMAGE = (1, 28, 28)

    @property
    def steps(self) -> int:
        """Optimizer steps per epoch."""
        return math.ceil(self.samples / self.batch_size)

    @property
    def parameters(self) -> int:
        """The number of trainable scalars (421,642)."""
        convs = sum(c_in * c_out * 9 + c_out for c_in, c_out in self.CONVS)
        return convs + sum(a * b + b for a, b in itertools.pairwise(self.DENSE))

    def data(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Random inputs (samples, 1, 28, 28) in [0, 1), float32, and integer labels."""
        rng = np.random.default_rng(seed)
        x = rng.random((self.samples, *self.IMAGE), dtype=np.float32)
        y = rng.integers(0, 10, size=self.samples, dtype=np.int64)
        return x, y


@dataclass(frozen=True)
class TransformerSpec:
    """A small GPT: token embedding plus learned positions, ``blocks`` pre-LN Transformer
    blocks (causal multi-head self-attention, a GELU feed-forward network of width ``ff``,
    residual adds), a final LayerNorm and a Dense to the vocabulary; trained for one epoch
    of ``samples`` random sequences of length ``time`` (next-token targets, also random) in
    batches of ``batch_size`` by softmax cross-entropy and Adam. No dropout. The GELU is the
    tanh form in both frameworks (see the README for why)."""

    samples: int
    batch_size: int = 32
    time: int = 64
    d_model: int = 128
    heads: int = 4
    blocks: int = 2
    ff: int = 512
    vocab: int = 64
    learning_rate: float = 1e-3

    @property
    def steps(self) -> int:
        """Optimizer steps per epoch."""
        return math.ceil(self.samples / self.batch_size)

    @property
    def parameters(self) -> int:
        """The number of trainable scalars."""
        d, ff = self.d_model, self.ff
        block = (4 * d * d + 4 * d) + (2 * d * ff + ff + d) + 4 * d  # attention, FFN, 2 LNs
        return (self.vocab * d + self.time * d + self.blocks * block + 2 * d
                + d * self.vocab + self.vocab)

    def epoch_flops(self) -> float:
        """Matrix-product FLOPs of one epoch, 3 × the forward's (forward, dL/dW, dL/dx):
        per token and block 2·(3d² + d² + 2·d·ff) for the projections and the FFN and
        2·2·T·d for the attention products (Q Kᵀ and A V over T keys), and 2·d·vocab for
        the output layer. Softmax, LayerNorm and GELU are not counted."""
        d = self.d_model
        block = 2 * (4 * d * d + 2 * d * self.ff) + 4 * self.time * d
        per_token = self.blocks * block + 2 * d * self.vocab
        return 3.0 * self.samples * self.time * per_token

    def data(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Random token ids (samples, time) and next-token targets of the same shape."""
        rng = np.random.default_rng(seed)
        ids = rng.integers(0, self.vocab, size=(self.samples, self.time + 1), dtype=np.int64)
        return ids[:, :-1].copy(), ids[:, 1:].copy()


#: The issue's MLP: 784-512-512-10 on 60,000 MNIST-shaped samples (669,706 parameters).
MLP_SIZES = (784, 512, 512, 10)
#: The per-step overhead probe: a 2-16-16-1 net at batch 8.
TINY_SIZES = (2, 16, 16, 1)
#: About 10 M parameters in a few big arrays (10,002,000 scalars).
ADAM_SHAPES: tuple[tuple[int, ...], ...] = ((2500, 2000), (2000, 2000), (1000, 1000), (2000,))
ADAM_SHAPES_QUICK: tuple[tuple[int, ...], ...] = ((500, 400), (400, 400), (200, 200), (400,))


def mlp_spec(batch_size: int, quick: bool) -> MLPSpec:
    """The 784-512-512-10 MLP on 60,000 samples; with ``quick``, 2,000 samples or four
    batches, whichever is more (4,096 at batch 1024)."""
    return MLPSpec(MLP_SIZES, batch_size, max(2_000, 4 * batch_size) if quick else 60_000)


def tiny_spec(quick: bool) -> MLPSpec:
    """The 2-16-16-1 net at batch 8 on 16,000 samples, i.e. 2,000 steps per pass (400 with
    ``quick``)."""
    return MLPSpec(TINY_SIZES, 8, 3_200 if quick else 16_000, loss="bce_logits")


def lenet_spec(quick: bool, batch_size: int = 64) -> LeNetSpec:
    """The CNN on 50 batches per pass (3,200 samples at batch 64, 12,800 at 256), 5 with
    ``quick``: a modest count, since one CPU epoch of 60,000 would take minutes per pass."""
    return LeNetSpec(batch_size * (5 if quick else 50), batch_size)


def adam_spec(quick: bool) -> AdamSpec:
    """10 Adam steps on about 10 M parameters (3 steps on about 0.4 M with ``quick``)."""
    if quick:
        return AdamSpec(ADAM_SHAPES_QUICK, steps=3)
    return AdamSpec(ADAM_SHAPES, steps=10)


def transformer_spec(quick: bool, large: bool = False) -> TransformerSpec:
    """The issue's GPT (2 blocks, d_model 128, 4 heads, T 64, batch 32) on 20 batches per
    pass (3 with ``quick``); ``large``: the GPU-sized one, 4 blocks, d_model 512, 8 heads,
    T 256, batch 64, 20 batches (2 with ``quick``)."""
    if large:
        return TransformerSpec(64 * (2 if quick else 20), batch_size=64, time=256,
                               d_model=512, heads=8, blocks=4, ff=2048)
    return TransformerSpec(32 * (3 if quick else 20))
