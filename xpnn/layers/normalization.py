"""Batch normalisation (Ioffe & Szegedy 2015) and layer normalisation (Ba, Kiros & Hinton
2016)."""

from __future__ import annotations

import math
from typing import Any

from xpnn import checks, distributed, initializers
from xpnn.errors import ShapeError
from xpnn.layers import windows
from xpnn.layers.base import Array, BuildContext, Context, Layer, Shape, batch_shape


class BatchNorm(Layer):
    """Batch normalisation of each feature (the last axis), with statistics over all other
    axes (the batch, and the steps of a sequence).

    Training, per feature over the m values in the batch::

        μ = (1/m) Σ x              mean
        c = x − μ                  centred value
        σ² = (1/m) Σ c²            variance (biased)
        s = √(σ² + ε)              standard deviation
        x̂ = c / s                  normalised value
        y = γ x̂ + β

    and the running statistics move towards the batch's::

        running_mean ← momentum · running_mean + (1 − momentum) · μ
        running_var  ← momentum · running_var  + (1 − momentum) · σ² m / (m − 1)

    (the unbiased variance; a batch with m = 1 leaves them unchanged). ``momentum=0.9`` is
    Keras's convention with PyTorch's default value: PyTorch's ``momentum=0.1`` is the same
    update. Inference uses them: x̂ = (x − running_mean) / √(running_var + ε).

    Backward in training, walking the graph above back from G = dL/dy (sums over the batch)::

        dL/dx̂  = γ G
        dL/ds  = −Σ dL/dx̂ · c / s²
        dL/dσ² = dL/ds / (2s)
        dL/dc  = dL/dx̂ / s + (2/m) c · dL/dσ²      (through x̂ and through σ²)
        dL/dμ  = −Σ dL/dc
        dL/dx  = dL/dc + dL/dμ / m

    which collapses (Σ c = 0) to the form computed here::

        dL/dx = (1 / (m s)) · (m dL/dx̂ − Σ dL/dx̂ − x̂ Σ (dL/dx̂ ⊙ x̂))
        dL/dγ = Σ G ⊙ x̂        dL/dβ = Σ G

    In inference the statistics are constants: dL/dx = γ G / √(running_var + ε).
    γ and β are not weight-decayed; the running statistics are non-trainable parameters. A
    frozen layer (``trainable=False``) always runs in inference mode, as in Keras, so
    fine-tuning does not disturb its statistics.

    **Several processes** (``fit(..., distributed=True)``, :mod:`xpnn.distributed`): by
    default each rank normalises its own share of the batch (per-replica statistics, as
    Horovod and PyTorch DDP do), and the running statistics are averaged over the ranks at
    the end of each epoch. With ``synchronized=True`` the statistics are those of the whole
    global batch, so N ranks train exactly as one process (ChainerMN's
    MultiNodeBatchNormalization). Rank r holds m_r of the M = Σ_r m_r values of a feature
    (M = global batch × the values per sample, known on every rank without asking). Forward,
    one sum over the ranks of 2 numbers per feature::

        S₁ = Σ_ranks Σ (x − K)      S₂ = Σ_ranks Σ (x − K)²
        μ = K + S₁/M                σ² = max(S₂/M − (S₁/M)², 0)

    with the shift K = running_mean, which is the same on every rank and keeps S₂/M − (S₁/M)²
    from cancelling once the running mean follows the data. Backward: every x̂_j depends on
    x_i directly and through μ and s, which are functions of all M values
    (∂μ/∂x_i = 1/M, ∂s/∂x_i = x̂_i/M because Σ (x − μ) = 0), so with g = dL/dx̂ ::

        dL/dx_i = Σ_j g_j ∂x̂_j/∂x_i = (1/s) · (g_i − (1/M) Σ_all g − x̂_i (1/M) Σ_all g ⊙ x̂)

    — the single-process formula with both sums taken over every rank: a second sum over the
    ranks of 2 numbers per feature. This is exact because each rank's G is already its share
    of dL/dy for the global loss (the training step scales its loss gradient by m_r / B).
    dL/dγ and dL/dβ are each rank's partial sums; the step's gradient reduction adds them
    up. Outside a distributed fit a synchronized layer is an ordinary BatchNorm.
    """

    #: The axis of the features, counted with the batch axis (-1: the last).
    feature_axis = -1

    def __init__(self, *, momentum: float = 0.9, epsilon: float = 1e-5, center: bool = True,
                 scale: bool = True, synchronized: bool = False, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.momentum = checks.number(owner, "momentum", momentum, 0, 1)
        self.epsilon = checks.number(owner, "epsilon", epsilon, 0, low_open=True)
        self.center = center
        self.scale = scale
        self.synchronized = bool(synchronized)

    @property
    def collective(self) -> bool:  # type: ignore[override]
        """A synchronized layer sums its statistics over the ranks while it trains."""
        return self.synchronized and self.trainable

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Create γ (ones), β (zeros) and the running mean (zeros) and variance (ones)."""
        super().build(input_shape, context)
        if not self.input_shape:
            raise ShapeError(f"layer '{self.name}' ({type(self).__name__}) needs inputs of "
                             "shape (batch, ..., features), received a batch of scalars")
        axis = self.feature_axis % (len(self.input_shape) + 1)  # counted with the batch axis
        features = self.input_shape[axis - 1]
        self.reduce_axes = tuple(i for i in range(len(self.input_shape) + 1) if i != axis)
        #: Values per sample and feature (the pixels of an image channel; 1 for vectors).
        self.values_per_sample = math.prod(self.input_shape[i - 1] for i in self.reduce_axes
                                           if i != 0)
        # γ, β and the statistics broadcast against the input with this shape
        self.broadcast_shape = tuple(features if i == axis else 1
                                     for i in range(len(self.input_shape) + 1))

        def constant(name: str) -> Any:
            return initializers.get(name)((features,), features, features, context.rng)

        self.gamma = self.add_parameter("gamma", constant("ones"), False) if self.scale else None
        self.beta = self.add_parameter("beta", constant("zeros"), False) if self.center else None
        self.running_mean = self.add_parameter("running_mean", constant("zeros"), False,
                                               trainable=False)
        self.running_var = self.add_parameter("running_var", constant("ones"), False,
                                              trainable=False)

    def _broadcast(self, vector: Array) -> Array:
        return self.xp.reshape(vector, self.broadcast_shape)

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = γ x̂ + β with batch statistics (training) or running statistics (inference);
        keeps x̂, 1/s and the mode."""
        xp = self.xp
        training = ctx.training and self.trainable
        ctx.group = distributed.active() if training and self.synchronized else None
        if ctx.group is not None:
            mean, variance, ctx.count = self._global_statistics(x, ctx.group)
            centred = x - mean
            self._update_running_statistics(mean, variance, ctx.count)
        elif training:
            mean = xp.mean(x, axis=self.reduce_axes, keepdims=True)
            centred = x - mean
            variance = xp.mean(centred * centred, axis=self.reduce_axes, keepdims=True)
            self._update_running_statistics(mean, variance, x.size // variance.size)
        else:
            mean = self._broadcast(self.running_mean.value)
            centred = x - mean
            variance = self._broadcast(self.running_var.value)
        inv_std = 1.0 / xp.sqrt(variance + self.epsilon)
        normalized = centred * inv_std
        ctx.normalized, ctx.inv_std, ctx.batch_statistics = normalized, inv_std, training
        y = normalized
        if self.gamma is not None:
            y = y * self._broadcast(self.gamma.value)
        if self.beta is not None:
            y = y + self._broadcast(self.beta.value)
        return y

    def _global_statistics(self, x: Array, group: Any) -> tuple[Array, Array, int]:
        """μ and σ² of the whole global batch (broadcastable against x) and M, by one sum
        over the ranks of the shifted sums S₁, S₂ (see the class docstring)."""
        xp = self.xp
        shift = self._broadcast(self.running_mean.value)
        shifted = x - shift
        local = xp.concat([
            xp.reshape(xp.sum(shifted, axis=self.reduce_axes), (-1,)),
            xp.reshape(xp.sum(shifted * shifted, axis=self.reduce_axes), (-1,))])
        sums = group.allreduce(local)
        features = int(local.shape[0]) // 2
        count = group.global_batch * self.values_per_sample
        shifted_mean = sums[:features] / float(count)
        variance = xp.maximum(sums[features:] / float(count) - shifted_mean * shifted_mean, 0.0)
        return self._broadcast(shifted_mean) + shift, self._broadcast(variance), count

    def _update_running_statistics(self, mean: Array, variance: Array, count: int) -> None:
        if count < 2:
            return
        xp, keep = self.xp, self.momentum
        batch_mean = xp.reshape(mean, (-1,))
        unbiased_var = xp.reshape(variance, (-1,)) * (count / (count - 1))
        self.running_mean.value = keep * self.running_mean.value + (1.0 - keep) * batch_mean
        self.running_var.value = keep * self.running_var.value + (1.0 - keep) * unbiased_var

    def backward(self, ctx: Context, grad_output: Array) -> Array | None:
        """Adds dL/dγ = Σ G ⊙ x̂, dL/dβ = Σ G; returns dL/dx (see the class docstring)."""
        xp = self.xp
        normalized, inv_std = ctx.normalized, ctx.inv_std
        if self.trainable:
            if self.gamma is not None:
                self.gamma.accumulate_grad(xp.reshape(
                    xp.sum(grad_output * normalized, axis=self.reduce_axes), (-1,)))
            if self.beta is not None:
                self.beta.accumulate_grad(
                    xp.reshape(xp.sum(grad_output, axis=self.reduce_axes), (-1,)))
        if not ctx.needs_input_grad[0]:
            return None
        grad_normalized = (grad_output * self._broadcast(self.gamma.value)
                           if self.gamma is not None else grad_output)
        if not ctx.batch_statistics:
            return grad_normalized * inv_std
        if ctx.group is not None:  # (1/M) Σ over every rank's values
            local = xp.concat([
                xp.reshape(xp.sum(grad_normalized, axis=self.reduce_axes), (-1,)),
                xp.reshape(xp.sum(grad_normalized * normalized, axis=self.reduce_axes),
                           (-1,))])
            sums = ctx.group.allreduce(local) / float(ctx.count)
            features = int(local.shape[0]) // 2
            mean_grad = self._broadcast(sums[:features])
            mean_grad_dot = self._broadcast(sums[features:])
        else:
            mean_grad = xp.mean(grad_normalized, axis=self.reduce_axes, keepdims=True)
            mean_grad_dot = xp.mean(grad_normalized * normalized, axis=self.reduce_axes,
                                    keepdims=True)
        return (grad_normalized - mean_grad - normalized * mean_grad_dot) * inv_std

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, "synchronized": self.synchronized}


class BatchNorm2D(BatchNorm):
    """Batch normalisation of each channel of images: the same formulas, forward and
    backward, as :class:`BatchNorm`, with one γ, β, running mean and running variance per
    channel C and the statistics taken over the m = N·H·W values of that channel (the batch
    and every pixel); ``synchronized=True`` takes them over every rank's images, as for
    :class:`BatchNorm`. ``data_format``: None or ``"channels_first"`` (NCHW: the channels
    are axis 1) or ``"channels_last"`` (NHWC: the last axis), as in
    :class:`~xpnn.layers.Conv2D`."""

    def __init__(self, *, momentum: float = 0.9, epsilon: float = 1e-5, center: bool = True,
                 scale: bool = True, synchronized: bool = False,
                 data_format: str | None = None, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(momentum=momentum, epsilon=epsilon, center=center, scale=scale,
                         synchronized=synchronized, name=name, trainable=trainable)
        self.data_format = windows.data_format_argument("BatchNorm2D", data_format)
        self.data_format_given = data_format is not None
        self.feature_axis = -1 if self.data_format == "channels_last" else 1

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Create γ, β and the running statistics, one per channel of the images."""
        windows.image_shape(self, input_shape)  # refuses what is not an image
        super().build(input_shape, context)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(),
                "data_format": self.data_format if self.data_format_given else None}


class LayerNormalization(Layer):
    """Layer normalisation (Ba, Kiros & Hinton 2016): each sample is normalised over the
    features on ``axis`` (an axis or a tuple of axes, counted with the batch axis as in
    Keras: −1 the last; the batch axis itself is refused), with no running statistics and
    the same computation in training and inference.

    Per sample and position, over the n values x_1 … x_n of the normalised axes::

        μ = (1/n) Σ x          σ² = (1/n) Σ (x − μ)²          s = √(σ² + ε)
        x̂ = (x − μ) / s        y = γ ⊙ x̂ + β                   (γ, β of the axes' shape)

    Backward, from G = dL/dy (the batch-norm derivation, with the mean over the n
    normalised values instead of over the batch; Σ_rest sums over every other axis)::

        dL/dx̂ = γ ⊙ G
        dL/dx = (1/s) (dL/dx̂ − mean(dL/dx̂) − x̂ ⊙ mean(dL/dx̂ ⊙ x̂))
        dL/dγ = Σ_rest G ⊙ x̂          dL/dβ = Σ_rest G

    ``epsilon`` defaults to PyTorch's and ONNX's 1e-5 (Keras: 1e-3); ``center`` and
    ``scale`` add β and γ (not weight-decayed).
    """

    def __init__(self, axis: int | tuple[int, ...] = -1, epsilon: float = 1e-5,
                 center: bool = True, scale: bool = True, *, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        axes = tuple(axis) if isinstance(axis, list | tuple) else (axis,)
        if not axes:
            raise ValueError("LayerNormalization: axis needs at least one axis")
        self.axis = tuple(checks.integer("LayerNormalization", "axis", a, -(2**31))
                          for a in axes)
        if any(a == 0 for a in self.axis):
            raise ValueError("LayerNormalization: axis 0 is the batch axis; normalise the "
                             "features of each sample, e.g. axis=-1")
        self.epsilon = checks.number("LayerNormalization", "epsilon", epsilon, 0,
                                     low_open=True)
        self.center = bool(center)
        self.scale = bool(scale)

    def normalized_axes(self, input_shape: Shape) -> tuple[int, ...]:
        """The normalised axes as sorted positive indices counted with the batch axis, for
        inputs of ``input_shape`` (no batch axis); a ShapeError if one does not exist."""
        rank = len(input_shape) + 1
        axes = set()
        for a in self.axis:
            if not -rank < a < rank or a % rank == 0:
                raise ShapeError(f"layer '{self.name}' (LayerNormalization) normalises axis "
                                 f"{a}, which inputs of shape {batch_shape(tuple(input_shape))}"
                                 " do not have besides the batch axis")
            axes.add(a % rank)
        if len(axes) != len(self.axis):
            raise ShapeError(f"layer '{self.name}' (LayerNormalization): axis {self.axis} "
                             "names one axis twice")
        return tuple(sorted(axes))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """The input shape (the axes must exist)."""
        self.normalized_axes(input_shape)
        return tuple(input_shape)

    def build(self, input_shape: Shape, context: BuildContext) -> None:
        """Create γ (ones) and β (zeros), of the normalised axes' sizes."""
        super().build(input_shape, context)
        self.axes = self.normalized_axes(self.input_shape)
        rank = len(self.input_shape) + 1
        self.other_axes = tuple(i for i in range(rank) if i not in self.axes)
        self.parameter_shape = tuple(self.input_shape[a - 1] for a in self.axes)
        # γ and β broadcast against (batch, ...) inputs with this shape
        self.broadcast_shape = tuple(self.input_shape[i - 1] if i in self.axes else 1
                                     for i in range(rank))
        size = math.prod(self.parameter_shape)

        def constant(name: str) -> Any:
            return initializers.get(name)(self.parameter_shape, size, size, context.rng)

        self.gamma = self.add_parameter("gamma", constant("ones"), False) if self.scale else None
        self.beta = self.add_parameter("beta", constant("zeros"), False) if self.center else None

    def forward(self, ctx: Context, x: Array) -> Array:
        """y = γ x̂ + β; keeps x̂ and 1/s."""
        xp = self.xp
        mean = xp.mean(x, axis=self.axes, keepdims=True)
        centred = x - mean
        variance = xp.mean(centred * centred, axis=self.axes, keepdims=True)
        ctx.inv_std = 1.0 / xp.sqrt(variance + self.epsilon)
        ctx.normalized = centred * ctx.inv_std
        y = ctx.normalized
        if self.gamma is not None:
            y = y * xp.reshape(self.gamma.value, self.broadcast_shape)
        if self.beta is not None:
            y = y + xp.reshape(self.beta.value, self.broadcast_shape)
        return y

    def backward(self, ctx: Context, grad_output: Array) -> Array | None:
        """Adds dL/dγ = Σ_rest G ⊙ x̂, dL/dβ = Σ_rest G; returns dL/dx (class docstring)."""
        xp = self.xp
        normalized = ctx.normalized
        if self.trainable:
            if self.gamma is not None:
                self.gamma.accumulate_grad(xp.reshape(
                    xp.sum(grad_output * normalized, axis=self.other_axes),
                    self.parameter_shape))
            if self.beta is not None:
                self.beta.accumulate_grad(xp.reshape(
                    xp.sum(grad_output, axis=self.other_axes), self.parameter_shape))
        if not ctx.needs_input_grad[0]:
            return None
        grad_normalized = (grad_output * xp.reshape(self.gamma.value, self.broadcast_shape)
                           if self.gamma is not None else grad_output)
        mean_grad = xp.mean(grad_normalized, axis=self.axes, keepdims=True)
        mean_grad_dot = xp.mean(grad_normalized * normalized, axis=self.axes, keepdims=True)
        return (grad_normalized - mean_grad - normalized * mean_grad_dot) * ctx.inv_std

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        axis: int | list[int] = self.axis[0] if len(self.axis) == 1 else list(self.axis)
        return {**super().get_config(), "axis": axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}
