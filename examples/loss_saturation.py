"""A saturated sigmoid neuron learns slowly with the quadratic loss and fast with
cross-entropy.

    python examples/loss_saturation.py [--device cpu] [--epochs 600] [--seed 0] [--quick]
                                       [--out loss_saturation.png]

The experiment of Nielsen's "Neural Networks and Deep Learning", chapter 3: one neuron
a = σ(w·x + b) with w = b = 2 sees the input x = 1 and should output 0; plain gradient descent,
rate 0.15. It starts deep in saturation (a = σ(4) ≈ 0.98), where σ'(z) ≈ 0.018.

- Quadratic loss ½(a − y)²: dL/dz = (a − y)·σ'(z) carries that small σ'(z), so the output
  hardly moves for the first hundred updates; it needs about 470 updates to fall below 0.1
  (Nielsen plots 300 epochs, where it is still at 0.2).
- Cross-entropy −[y ln a + (1 − y) ln(1 − a)]: dL/dz = a − y, no σ'(z), so learning is fastest
  when the neuron is most wrong; the output is below 0.1 after about 50 updates.

The figure shows the output and the loss per update for both losses; the printed lines give
the updates each needed and their ratio (about 9).
"""

from __future__ import annotations

import argparse

import numpy as np

import xpnn
import xpnn.plot

plt = xpnn.plot.pyplot()  # matplotlib.pyplot, or an ImportError saying how to install it

LOSSES = {"quadratic": "mean_squared_error", "cross-entropy": "binary_crossentropy"}
THRESHOLD = 0.1


def train(loss: str, epochs: int, device: str | None, seed: int) -> xpnn.History:
    """Train the saturated neuron towards 0 with ``loss``, one update per epoch.

    With the target 0 the "mae" metric |a − 0| is the output a itself, measured before each
    epoch's update: ``history["mae"][i]`` is the output after i updates.
    """
    model = xpnn.Sequential([xpnn.Dense(1), xpnn.Sigmoid()], device=device, seed=seed)
    model.compile(loss, xpnn.SGD(0.15), metrics=["mae"])
    model.build((1,))
    model.set_weights([np.array([[2.0]]), np.array([2.0])])  # w = 2, b = 2
    return model.fit(np.ones((1, 1)), np.zeros((1, 1)), epochs=epochs, batch_size=1,
                     verbose=0)


def main() -> dict[str, int | None]:
    """Train with both losses; return the updates each needed to bring the output below 0.1
    (None: not within the epochs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--epochs", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0,
                        help="no effect: the initial weights are set to w = b = 2")
    parser.add_argument("--quick", action="store_true", help="150 epochs, for tests")
    parser.add_argument("--out", default="loss_saturation.png")
    args = parser.parse_args()
    epochs = 150 if args.quick else args.epochs

    figure, (output_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    updates: dict[str, int | None] = {}
    for label, loss in LOSSES.items():
        history = train(loss, epochs, args.device, args.seed)
        outputs = np.array(history["mae"])
        below = np.flatnonzero(outputs < THRESHOLD)
        updates[label] = int(below[0]) if below.size else None
        reached = (f"below {THRESHOLD} after {updates[label]} updates" if below.size
                   else f"not below {THRESHOLD} within {epochs} epochs")
        print(f"{label:<14} output {outputs[0]:.3f} -> {outputs[-1]:.3f}: {reached}")
        line, = output_ax.plot(outputs, label=label)
        loss_ax.plot(history["loss"], label=label, color=line.get_color())
        if updates[label] is not None:
            output_ax.axvline(updates[label], color=line.get_color(), linestyle=":")
    quadratic, cross_entropy = updates["quadratic"], updates["cross-entropy"]
    if quadratic is not None and cross_entropy is not None:
        print(f"cross-entropy needed {quadratic / cross_entropy:.1f}× fewer updates")
    elif cross_entropy is not None:
        print(f"cross-entropy needed more than {epochs / cross_entropy:.1f}× fewer updates")

    output_ax.axhline(THRESHOLD, color="gray", linewidth=0.8)
    output_ax.set(xlabel="update", ylabel="output a = σ(w + b)", ylim=(0, 1),
                  title="output (target 0)")
    loss_ax.set(xlabel="update", ylabel="loss", yscale="log", title="loss")
    for ax in (output_ax, loss_ax):
        ax.legend()
    figure.suptitle("A saturated sigmoid neuron (w = b = 2, x = 1), gradient descent η = 0.15")
    xpnn.plot.save(figure, args.out)
    print(f"figure written to {args.out}")
    return updates


if __name__ == "__main__":
    main()
