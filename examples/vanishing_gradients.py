"""Vanishing gradients in recurrent networks, told with numbers: SimpleRNN vs LSTM vs GRU.

    python examples/vanishing_gradients.py --out vanishing.png   # CPU: under a minute
    python examples/vanishing_gradients.py --quick --out v.png   # a seconds-long smoke run

1. **The adding problem** (Hochreiter & Schmidhuber 1997): each step holds a random number
   in [0, 1) and a marker; two steps are marked, one in each half of the sequence, and the
   target is the sum of their numbers. Predicting the mean (1) scores MSE 1/6 ≈ 0.167; a
   model that learns must carry the first number across about half the sequence. The same
   small network, ``layer(units) -> Dense(1)``, is trained briefly with each layer; the test
   MSE and the accuracy (the share of predictions within 0.04 of the target) are printed
   and the validation MSE is drawn per epoch. The gated layers learn it; the SimpleRNN
   stays near the mean.
2. **How far back does the gradient reach?** For 256 test sequences the loss (on the
   prediction made from the last step) is backpropagated through time, and the context of
   the recurrent layer's call holds ``state_gradients``, dL/dh_t for every step t. Their
   mean norm is printed and drawn (log scale) against the distance T − t from the loss,
   before and after training. Each step back through a SimpleRNN multiplies the gradient by
   Uᵀ diag(1 − h_t²); the LSTM's cell state and the GRU's update gate also pass it back
   through an elementwise gate (f, z) with no weight matrix. At initialisation the gated
   layers lose it fastest (their gates sit near 0.73 and 0.5 and multiply it at every
   step), while the SimpleRNN, with small inputs and U of spectral radius about 1, passes
   it on. Training reverses the picture: the LSTM and GRU open their gates towards 1 and
   their gradient stays level across the whole sequence, down to the first marked step;
   the trained SimpleRNN's gradient shrinks geometrically, by orders of magnitude over the
   distance the task needs, and it does not learn the task in this training budget.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import xpnn
import xpnn.plot

plt = xpnn.plot.pyplot()  # matplotlib.pyplot, or an ImportError saying how to install it

LAYERS = {"SimpleRNN": xpnn.SimpleRNN, "LSTM": xpnn.LSTM, "GRU": xpnn.GRU}
#: A prediction within this distance of the target counts as correct.
TOLERANCE = 0.04


def gradient_norms(model: xpnn.Sequential, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean ‖dL/dh_t‖ over the batch (x, y), indexed by the distance T − t from the loss:
    one forward and backward pass through the layers by hand, the recurrent layer's
    ``state_gradients`` read from its call's context."""
    backend = model.backend
    recurrent, dense = model.layers
    with backend.scope():
        hidden, recurrent_call = recurrent.apply(backend.asarray(x, model.dtype), training=True)
        predictions, dense_call = dense.apply(hidden, training=True)
        _, grad = model.loss.value_and_grad(predictions, backend.asarray(y, model.dtype))
        recurrent.backward(recurrent_call, dense.backward(dense_call, grad))
        grads = backend.to_host(recurrent_call.state_gradients)
    return np.linalg.norm(grads, axis=-1).mean(axis=0)[::-1]


def adding_problem(samples: int, steps: int, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Sequences (samples, steps, 2) of [number, marker] and their targets (samples, 1)."""
    numbers = rng.uniform(0.0, 1.0, (samples, steps))
    markers = np.zeros((samples, steps))
    rows = np.arange(samples)
    first = rng.integers(0, steps // 2, samples)
    second = rng.integers(steps // 2, steps, samples)
    markers[rows, first] = markers[rows, second] = 1.0
    targets = numbers[rows, first] + numbers[rows, second]
    return np.stack([numbers, markers], axis=-1), targets[:, None]


def train_on_adding(make: type, data: tuple, args: argparse.Namespace) -> dict:
    """Train ``make(units) -> Dense(1)`` on the adding problem: test MSE and accuracy, the
    validation MSE per epoch, and the gradient norms before and after training."""
    (x_train, y_train), (x_test, y_test) = data
    model = xpnn.Sequential([make(args.units), xpnn.Dense(1)], device=args.device,
                            seed=args.seed)
    model.compile("mse", xpnn.Adam(args.learning_rate, clip_norm=1.0), metrics=["mse"])
    model.build(x_train.shape[1:])
    probe = (x_test[:256], y_test[:256])
    norms_before = gradient_norms(model, *probe)
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=0,
                        validation_data=(x_test, y_test), seed=args.seed)
    seconds = time.perf_counter() - start
    predictions = model.predict(x_test)
    return {"mse": float(np.mean((predictions - y_test) ** 2)),
            "accuracy": float(np.mean(np.abs(predictions - y_test) < TOLERANCE)),
            "val_mse": history["val_mse"], "seconds": seconds,
            "norms_before": norms_before, "norms_after": gradient_norms(model, *probe)}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:N, auto or strict (default: $XPNN_DEVICE or cpu)")
    parser.add_argument("--steps", type=int, default=50, help="sequence length")
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--samples", type=int, default=8000, help="training sequences")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="vanishing_gradients.png", help="the figure (PNG)")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.units, args.samples, args.epochs = 20, 8, 256, 2

    rng = np.random.default_rng(args.seed)
    data = (adding_problem(args.samples, args.steps, rng),
            adding_problem(max(args.samples // 4, 64), args.steps, rng))
    print(f"1. the adding problem, {args.steps} steps: {args.samples} training sequences, "
          f"{args.epochs} epochs, {args.units} units (predicting the mean scores MSE "
          f"{1 / 6:.3f})")
    results = {}
    for name, make in LAYERS.items():
        results[name] = result = train_on_adding(make, data, args)
        print(f"   {name:<9} test MSE {result['mse']:.4f}, accuracy (within {TOLERANCE}) "
              f"{result['accuracy']:6.1%}   [{result['seconds']:.0f} s]")

    distances = [d for d in (0, 5, 10, 20, 30, 40, 60, 80) if d < args.steps]
    print(f"\n2. mean ‖dL/dh_t‖ at distance T − t from the loss on the last of {args.steps} "
          "steps, before -> after training")
    print("   distance " + "".join(f"{d:>10}" for d in distances))
    for name, result in results.items():
        for when in ("before", "after"):
            norms = result[f"norms_{when}"]
            label = f"{name} {when}"
            print(f"   {label:<16}" + "".join(f"{norms[d]:10.2e}" for d in distances))
    far = distances[-1]
    for name, result in results.items():
        before, after = (result[f"norms_{when}"] for when in ("before", "after"))
        print(f"   {name}: at distance {far} the gradient is {before[far] / before[0]:.1e} of "
              f"the one at the loss before training, {after[far] / after[0]:.1e} after")

    draw(results, args)
    return results


def draw(results: dict, args: argparse.Namespace) -> None:
    """Left: validation MSE per epoch; right: gradient norm against distance (log scale)."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for name, result in results.items():
        epochs = np.arange(1, len(result["val_mse"]) + 1)
        left.plot(epochs, result["val_mse"], marker="o", label=name)
    left.axhline(1 / 6, color="grey", linestyle="--", label="predict the mean")
    left.set(xlabel="epoch", ylabel="validation MSE", ylim=(0, 0.25),
             title=f"Adding problem, {args.steps} steps")
    left.legend()
    for (name, result), colour in zip(results.items(), ("C0", "C1", "C2"), strict=True):
        distance = np.arange(args.steps)
        right.semilogy(distance, result["norms_after"], color=colour, label=f"{name}, trained")
        right.semilogy(distance, result["norms_before"], color=colour, linestyle=":",
                       label=f"{name}, initial")
    right.set(xlabel="distance T − t from the loss (steps)", ylabel="mean ‖dL/dh_t‖",
              title="Gradient reaching step t")
    right.legend(fontsize="small")
    xpnn.plot.save(figure, args.out)
    print(f"\nfigure written to {args.out}")


if __name__ == "__main__":
    main()
