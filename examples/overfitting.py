"""Overfitting and two cures: a large network on 300 digits, plain, with L2 weight decay and
with dropout; training and test curves per epoch.

    python examples/overfitting.py [--device cpu] [--epochs 200] [--seed 0] [--quick]
                                   [--out overfitting.png]

Six hidden layers of 100 ReLU units (about 50,000 weights) learn 300 training digits by
heart: the training loss goes to ~0.002 and training accuracy to 100 % while the test
accuracy stalls about 8 points lower and the test cross-entropy climbs back up from its
minimum (the network grows over-confident). Weight decay (λ = 0.01 on every kernel) mostly
cures the over-confidence: the test cross-entropy drops by about a fifth. Dropout (rate 0.2
after every hidden layer) narrows the accuracy gap and gains about a point of test accuracy.
The 8×8 digits are an easy problem, so the effects are smaller than on MNIST.

The figure shows train (solid) and test (dashed) accuracy and cross-entropy for the three
runs. The cross-entropy is recorded each epoch by a small callback, without the ½λ‖W‖² term
that the weight-decay run's reported loss includes, so the three curves compare like with
like. The printed table gives the final accuracies, the gap and the test cross-entropy.
"""

from __future__ import annotations

import argparse

import xpnn
import xpnn.plot


class CrossEntropy(xpnn.Callback):
    """Adds the cross-entropy of the training set (``cross_entropy``) and of the test set
    (``val_cross_entropy``), without any weight-decay term, to each epoch's logs."""

    def __init__(self, train: tuple, test: tuple) -> None:
        super().__init__()
        self.datasets = {"": train, "val_": test}
        self.loss = xpnn.SoftmaxCrossEntropy()

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """Measure both sets with the epoch's final weights (inference mode)."""
        for prefix, (x, y) in self.datasets.items():
            logs[f"{prefix}cross_entropy"] = float(self.loss(self.model.predict(x), y))


def build(variant: str, device: str | None, seed: int) -> xpnn.Sequential:
    """The large network: ``variant`` is "plain", "weight decay" or "dropout"."""
    layers: list[xpnn.Layer] = []
    for _ in range(6):
        layers += [xpnn.Dense(100, weight_decay=0.01 if variant == "weight decay" else None),
                   xpnn.ReLU()]
        if variant == "dropout":
            layers.append(xpnn.Dropout(0.2))
    layers.append(xpnn.Dense(10))
    model = xpnn.Sequential(layers, device=device, seed=seed, name=variant)
    model.compile("softmax_crossentropy", xpnn.SGD(0.05), metrics=["accuracy"])
    return model


def main() -> dict[str, dict[str, float]]:
    """Train the three variants; return each one's final accuracies and test
    cross-entropy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few epochs, for tests")
    parser.add_argument("--out", default="overfitting.png")
    args = parser.parse_args()
    epochs = 3 if args.quick else args.epochs

    (x_train, y_train), (x_test, y_test) = xpnn.datasets.load_digits(seed=args.seed)
    x_train, y_train = x_train[:300], y_train[:300]
    histories, results = {}, {}
    print(f"{'variant':<14}{'train acc':>10}{'test acc':>10}{'gap':>8}{'test CE':>9}")
    for variant in ("plain", "weight decay", "dropout"):
        model = build(variant, args.device, args.seed)
        history = model.fit(x_train, y_train, epochs=epochs, batch_size=100, verbose=0,
                            validation_data=(x_test, y_test), seed=args.seed,
                            callbacks=[CrossEntropy((x_train, y_train), (x_test, y_test))])
        histories[variant] = history
        train = model.evaluate(x_train, y_train)["accuracy"]  # without dropout's noise
        test = history["val_accuracy"][-1]
        test_ce = history["val_cross_entropy"][-1]
        results[variant] = {"train": train, "test": test, "test_ce": test_ce}
        print(f"{variant:<14}{train:>10.3f}{test:>10.3f}{train - test:>8.3f}{test_ce:>9.3f}")
    xpnn.plot.training_curves(histories, args.out, keys=["accuracy", "cross_entropy"],
                              title="300 digits: train (solid) and test (dashed)")
    print(f"figure written to {args.out}")
    return results


if __name__ == "__main__":
    main()
