"""The PyTorch side of each benchmark (optional: the ``bench`` extra).

The idiomatic training loop without a DataLoader, so that data loading does not dominate:
a seeded permutation, ``index_select`` of each batch from tensors already on the device,
``zero_grad``, forward, ``CrossEntropyLoss`` / ``BCEWithLogitsLoss``, ``backward``,
``torch.optim.SGD(momentum=0.9).step()``. Threads are PyTorch's default; autograd is on
(no ``torch.no_grad``). PyTorch's momentum is v ← μv + g, w ← w − ηv, xpnn's v ← μv − ηg,
w ← w + v: different bookkeeping, the same cost. On a GPU, TF32 is switched off for matrix
products and cuDNN convolutions, so both frameworks compute in full float32 (the harness
sets ``CUPY_TF32=0`` for CuPy), and every timed pass ends with ``torch.cuda.synchronize``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.specs import AdamSpec, LeNetSpec, MLPSpec, TransformerSpec
from benchmarks.timing import Runner, Unavailable

_torch: Any = None
_torch_reason: str | None = None


def load_torch() -> Any:
    """The ``torch`` module, or raise :class:`Unavailable` saying why it cannot be used."""
    global _torch, _torch_reason
    if _torch is None and _torch_reason is None:
        try:
            import torch
        except Exception as error:  # ImportError, or a broken CUDA bundle (OSError)
            _torch_reason = (f"PyTorch is not installed ({type(error).__name__}); "
                             "pip install -e '.[bench]'")
        else:
            _torch = torch
    if _torch is None:
        raise Unavailable(_torch_reason)
    return _torch


def torch_device(device: str) -> tuple[Any, Any]:
    """PyTorch's device for an xpnn device name, and its synchronise function."""
    torch = load_torch()
    if device == "cpu":
        return torch.device("cpu"), lambda: None
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise Unavailable(f"this PyTorch ({torch.__version__}) sees no CUDA device")
        target = torch.device("cuda", int(device.partition(":")[2] or 0))
        torch.backends.cuda.matmul.allow_tf32 = False  # full float32, as CUPY_TF32=0
        torch.backends.cudnn.allow_tf32 = False
        return target, lambda: torch.cuda.synchronize(target)
    raise Unavailable(f"no PyTorch version for device {device!r}")


def build_mlp(spec: MLPSpec, target: Any) -> tuple[Any, Any, Any]:
    """``nn.Sequential(Linear, ReLU, …, Linear)``, its loss and ``SGD(momentum=μ)``."""
    torch = load_torch()
    torch.manual_seed(0)
    layers: list[Any] = []
    for index, (fan_in, fan_out) in enumerate(spec.layer_pairs):
        if index:
            layers.append(torch.nn.ReLU())
        layers.append(torch.nn.Linear(fan_in, fan_out))
    model = torch.nn.Sequential(*layers).to(target)
    criterion = (torch.nn.CrossEntropyLoss() if spec.loss == "softmax_crossentropy"
                 else torch.nn.BCEWithLogitsLoss())
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.learning_rate,
                                momentum=spec.momentum)
    return model, criterion, optimizer


def _resetter(model: Any, optimizer: Any) -> Any:
    """A function that restores the model's current weights and optimizer state."""
    import copy

    weights = copy.deepcopy(model.state_dict())
    optimizer_state = copy.deepcopy(optimizer.state_dict())

    def reset() -> None:
        model.load_state_dict(weights)
        optimizer.load_state_dict(optimizer_state)

    return reset


def mlp_runner(spec: MLPSpec, x: np.ndarray, y: np.ndarray, device: str) -> Runner:
    """One epoch of the loop described in the module docstring per pass; the epoch loss is
    summed on the device (``loss.detach()``) and read once at the end, like xpnn's ``fit``."""
    torch = load_torch()
    target, sync = torch_device(device)
    model, criterion, optimizer = build_mlp(spec, target)
    x_dev = torch.from_numpy(x).to(target)
    y_dev = torch.from_numpy(y).to(target)
    batch = spec.batch_size

    def run(index: int) -> None:
        order = torch.from_numpy(np.random.default_rng(1000 + index).permutation(spec.samples))
        order = order.to(target)
        total = torch.zeros((), device=target)
        for start in range(0, spec.samples, batch):
            rows = order[start:start + batch]
            x_batch = x_dev.index_select(0, rows)
            y_batch = y_dev.index_select(0, rows)
            optimizer.zero_grad()
            loss = criterion(model(x_batch), y_batch)
            loss.backward()
            optimizer.step()
            total += loss.detach() * x_batch.shape[0]
        float(total)

    return Runner(run, sync, _resetter(model, optimizer))


def adam_runner(spec: AdamSpec, device: str) -> Runner:
    """``spec.steps`` calls of ``torch.optim.Adam.step()`` per pass (PyTorch's default
    implementation choice for the device) with gradients set once."""
    torch = load_torch()
    target, sync = torch_device(device)
    values, grads = spec.arrays()
    params = []
    for value, grad in zip(values, grads, strict=True):
        param = torch.nn.Parameter(torch.from_numpy(value).to(target))
        param.grad = torch.from_numpy(grad).to(target)
        params.append(param)
    optimizer = torch.optim.Adam(params, lr=spec.learning_rate)

    def run(index: int) -> None:
        for _ in range(spec.steps):
            optimizer.step()

    return Runner(run, sync)


def lenet_runner(spec: LeNetSpec, x: np.ndarray, y: np.ndarray, device: str) -> Runner:
    """The CNN of :class:`LeNetSpec` (``Conv2d``, ``MaxPool2d``, ``Flatten``, ``Linear``) for
    one epoch per pass, by the loop of :func:`mlp_runner`."""
    torch = load_torch()
    target, sync = torch_device(device)
    nn = torch.nn
    torch.manual_seed(0)
    layers: list[Any] = []
    for c_in, c_out in spec.CONVS:
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    layers += [nn.Flatten(), nn.Linear(spec.DENSE[0], spec.DENSE[1]), nn.ReLU(),
               nn.Linear(spec.DENSE[1], spec.DENSE[2])]
    model = nn.Sequential(*layers).to(target)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.learning_rate,
                                momentum=spec.momentum)
    x_dev = torch.from_numpy(x).to(target)
    y_dev = torch.from_numpy(y).to(target)

    def run(index: int) -> None:
        order = torch.from_numpy(np.random.default_rng(1000 + index).permutation(spec.samples))
        order = order.to(target)
        total = torch.zeros((), device=target)
        for start in range(0, spec.samples, spec.batch_size):
            rows = order[start:start + spec.batch_size]
            x_batch = x_dev.index_select(0, rows)
            optimizer.zero_grad()
            loss = criterion(model(x_batch), y_dev.index_select(0, rows))
            loss.backward()
            optimizer.step()
            total += loss.detach() * x_batch.shape[0]
        float(total)

    return Runner(run, sync, _resetter(model, optimizer))


def build_transformer(spec: TransformerSpec, target: Any) -> Any:
    """The GPT of :class:`TransformerSpec` in PyTorch: ``nn.Embedding`` plus a learned
    position table, ``nn.TransformerEncoder`` of ``nn.TransformerEncoderLayer(d_model,
    heads, ff, dropout=0, activation=GELU('tanh'), batch_first=True, norm_first=True)``
    (pre-LN) run with a causal mask, a final ``nn.LayerNorm`` and ``nn.Linear``."""
    torch = load_torch()
    nn = torch.nn
    torch.manual_seed(0)

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(spec.vocab, spec.d_model)
            self.positions = nn.Parameter(0.02 * torch.randn(spec.time, spec.d_model))
            layer = nn.TransformerEncoderLayer(
                spec.d_model, spec.heads, spec.ff, dropout=0.0,
                activation=nn.GELU(approximate="tanh"), batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, spec.blocks,
                                                enable_nested_tensor=False)
            self.norm = nn.LayerNorm(spec.d_model)
            self.head = nn.Linear(spec.d_model, spec.vocab)
            self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(
                spec.time))

        def forward(self, ids: Any) -> Any:
            h = self.embed(ids) + self.positions
            h = self.blocks(h, mask=self.causal, is_causal=True)
            return self.head(self.norm(h))

    return GPT().to(target)


def transformer_runner(spec: TransformerSpec, x: np.ndarray, y: np.ndarray,
                       device: str) -> Runner:
    """The GPT of :func:`build_transformer` for one epoch per pass, by the loop of
    :func:`mlp_runner` with ``torch.optim.Adam`` and ``CrossEntropyLoss`` over every
    position."""
    torch = load_torch()
    target, sync = torch_device(device)
    model = build_transformer(spec, target)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    x_dev = torch.from_numpy(x).to(target)
    y_dev = torch.from_numpy(y).to(target)

    def run(index: int) -> None:
        order = torch.from_numpy(np.random.default_rng(1000 + index).permutation(spec.samples))
        order = order.to(target)
        total = torch.zeros((), device=target)
        for start in range(0, spec.samples, spec.batch_size):
            rows = order[start:start + spec.batch_size]
            x_batch = x_dev.index_select(0, rows)
            optimizer.zero_grad()
            logits = model(x_batch)
            loss = criterion(logits.reshape(-1, spec.vocab),
                             y_dev.index_select(0, rows).reshape(-1))
            loss.backward()
            optimizer.step()
            total += loss.detach() * x_batch.shape[0]
        float(total)

    return Runner(run, sync, _resetter(model, optimizer))


def products_runner(spec: MLPSpec, device: str) -> Runner:
    """Only the matrix products of an epoch of the MLP (as ``hand.products_runner``), with
    PyTorch's BLAS (``torch.mm(..., out=)``)."""
    torch = load_torch()
    target, sync = torch_device(device)
    generator = torch.Generator().manual_seed(0)
    batch = spec.batch_size

    def make(*shape: int) -> Any:
        return torch.rand(shape, generator=generator).to(target)

    weights = [make(a, b) for a, b in spec.layer_pairs]
    grads = [torch.empty_like(w) for w in weights]
    acts = [make(batch, n) for n in spec.sizes]
    deltas = [make(batch, b) for _, b in spec.layer_pairs]
    last = len(weights) - 1

    def run(index: int) -> None:
        with torch.no_grad():
            for start in range(0, spec.samples, batch):
                n = min(batch, spec.samples - start)
                for i, weight in enumerate(weights):
                    torch.mm(acts[i][:n], weight, out=acts[i + 1][:n])
                for i in range(last, -1, -1):
                    torch.mm(acts[i][:n].T, deltas[i][:n], out=grads[i])
                    if i > 0:
                        torch.mm(deltas[i][:n], weights[i].T, out=deltas[i - 1][:n])

    return Runner(run, sync)
