"""One sigmoid neuron learns NOT, AND and OR but not XOR; a hidden layer makes XOR easy.

    python examples/logic_gates.py [--device cpu] [--epochs 500] [--seed 0] [--quick]
                                   [--out logic_gates.png]

A neuron σ(w₁x₁ + w₂x₂ + b) says 1 on one side of the straight line w₁x₁ + w₂x₂ + b = 0 and
0 on the other, so it can learn exactly the gates whose 1s a line separates from their 0s:
AND, OR and NOT (the perceptron of Rosenblatt; "Deep Learning from Scratch", chapter 2). XOR's
1s, (0, 1) and (1, 0), lie on one diagonal of the square and its 0s on the other: no line
separates them, so one neuron gets at most 3 of the 4 cases right (trained on the
cross-entropy it settles at the output 0.5 everywhere: 2 of 4). Four tanh units in a hidden
layer bend the boundary around the diagonal and learn XOR perfectly.

NOT has a single input. To draw it like the others it is trained as a two-input gate that
ignores its second input: the four input pairs with the target NOT x₁; its boundary is then
the vertical line x₁ ≈ 0.5.

Every network is trained full-batch with the binary cross-entropy and momentum (η = 0.5,
μ = 0.9) for 500 epochs. The figure shows each one's decision regions (output > 0.5) and the
four training points; the printed truth table gives every output and target, then the
accuracies: 1.00 for NOT, AND, OR and XOR with a hidden layer, 0.50 for XOR with one neuron.
"""

from __future__ import annotations

import argparse

import numpy as np

import xpnn
import xpnn.plot

plt = xpnn.plot.pyplot()  # matplotlib.pyplot, or an ImportError saying how to install it


def build(hidden_units: int, device: str | None, seed: int) -> xpnn.Sequential:
    """One sigmoid neuron, after a tanh layer of ``hidden_units`` units if that is not 0."""
    hidden = [xpnn.Dense(hidden_units), xpnn.Tanh()] if hidden_units else []
    model = xpnn.Sequential([*hidden, xpnn.Dense(1), xpnn.Sigmoid()], device=device,
                            seed=seed)
    model.compile("binary_crossentropy", xpnn.Momentum(0.5, momentum=0.9),
                  metrics=["accuracy"])
    return model


def main() -> dict[str, float]:
    """Train the five networks; return each one's accuracy on its truth table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="100 epochs, for tests")
    parser.add_argument("--out", default="logic_gates.png")
    args = parser.parse_args()
    epochs = 100 if args.quick else args.epochs

    x, xor = xpnn.datasets.xor()  # the four input pairs (0, 0), (0, 1), (1, 0), (1, 1)
    first, second = x[:, :1], x[:, 1:]
    # name: (truth table, hidden units)
    gates = {
        "NOT": (1 - first, 0),
        "AND": (first * second, 0),
        "OR": (np.maximum(first, second), 0),
        "XOR, one neuron": (xor, 0),
        "XOR, 4 hidden units": (xor, 4),
    }

    figure, axes = plt.subplots(1, len(gates), figsize=(4 * len(gates), 4),
                               layout="constrained")
    outputs, accuracy = {}, {}
    for (name, (y, hidden_units)), ax in zip(gates.items(), axes, strict=True):
        model = build(hidden_units, args.device, args.seed)
        model.fit(x, y, epochs=epochs, batch_size=len(x), verbose=0, seed=args.seed)
        outputs[name] = model.predict(x)[:, 0]
        accuracy[name] = model.evaluate(x, y)["accuracy"]
        xpnn.plot.decision_regions(model, x, y, ax=ax,
                                   title=f"{name}: accuracy {accuracy[name]:.2f}")

    print(f"{'x₁ x₂':<8}" + "".join(f"{name:>21}" for name in gates))
    for row in range(len(x)):
        cells = "".join(f"{outputs[name][row]:>17.3f} ({int(y[row, 0])})"
                        for name, (y, _) in gates.items())
        print(f"{int(first[row, 0]):>2} {int(second[row, 0]):>2}   {cells}")
    print(f"{'accuracy':<8}" + "".join(f"{accuracy[name]:>21.2f}" for name in gates))
    print(f"(network output, target in brackets; {epochs} epochs)")

    figure.suptitle("Decision regions: one sigmoid neuron draws a straight line")
    xpnn.plot.save(figure, args.out)
    print(f"figure written to {args.out}")
    return accuracy


if __name__ == "__main__":
    main()
