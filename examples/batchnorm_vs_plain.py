"""Batch normalisation against the initial weight scale: the same deep MLP on the digits, with
and without BatchNorm, for initial weights drawn with several standard deviations.

    python examples/batchnorm_vs_plain.py [--device cpu] [--epochs 20] [--seed 0] [--quick]
                                          [--out batchnorm_vs_plain.png]

Five hidden layers of 100 ReLU units, plain SGD (rate 0.01, batch 100), weights N(0, std²).
Without BatchNorm the network only learns in a narrow band of scales: with std 1 the
activations explode and the loss becomes NaN in the first epoch; with std 0.03 or less they
vanish layer by layer and training accuracy stays at chance (10 %) for all 20 epochs. With a
BatchNorm after every hidden Dense layer the network learns at every scale, and fastest at
the small ones. The figure has one panel per scale with the training accuracy per epoch
(solid) and the test accuracy (dashed) of both networks.
"""

from __future__ import annotations

import argparse
import math

import xpnn
import xpnn.plot

plt = xpnn.plot.pyplot()  # matplotlib.pyplot, or an ImportError saying how to install it


def build(batchnorm: bool, std: float, device: str | None, seed: int) -> xpnn.Sequential:
    """The deep MLP with N(0, std²) weights, with or without BatchNorm."""
    layers: list[xpnn.Layer] = []
    for _ in range(5):
        layers.append(xpnn.Dense(100, kernel_initializer=xpnn.initializers.Normal(std)))
        if batchnorm:
            layers.append(xpnn.BatchNorm())
        layers.append(xpnn.ReLU())
    layers.append(xpnn.Dense(10, kernel_initializer=xpnn.initializers.Normal(std)))
    model = xpnn.Sequential(layers, device=device, seed=seed,
                            name="BatchNorm" if batchnorm else "plain")
    model.compile("softmax_crossentropy", xpnn.SGD(0.01), metrics=["accuracy"])
    return model


def main() -> dict[str, dict[float, float]]:
    """Train both networks at each scale; return their final test accuracies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="two scales, two epochs")
    parser.add_argument("--out", default="batchnorm_vs_plain.png")
    args = parser.parse_args()
    scales = (1.0, 0.1) if args.quick else (1.0, 0.3, 0.1, 0.03, 0.01)
    epochs = 2 if args.quick else args.epochs

    (x_train, y_train), (x_test, y_test) = xpnn.datasets.load_digits(seed=args.seed)
    figure, axes = plt.subplots(1, len(scales), figsize=(4 * len(scales), 3.5), sharey=True,
                                layout="constrained")
    results: dict[str, dict[float, float]] = {"plain": {}, "BatchNorm": {}}
    print(f"{'weight std':>10}{'plain':>12}{'BatchNorm':>12}   (test accuracy after "
          f"{epochs} epochs)")
    for std, ax in zip(scales, axes, strict=True):
        histories = {}
        for batchnorm in (False, True):
            model = build(batchnorm, std, args.device, args.seed)
            guard = xpnn.TerminateOnNaN()
            histories[model.name] = model.fit(
                x_train, y_train, epochs=epochs, batch_size=100, verbose=0, seed=args.seed,
                validation_data=(x_test, y_test), callbacks=[guard])
            # a run that blew up has no accuracy (its weights are NaN)
            accuracy = (math.nan if guard.stopped_at is not None
                        else model.evaluate(x_test, y_test)["accuracy"])
            results[model.name][std] = accuracy
        print(f"{std:>10}{results['plain'][std]:>12.3f}{results['BatchNorm'][std]:>12.3f}"
              + ("   (plain diverged: NaN loss)" if math.isnan(results["plain"][std]) else ""))
        xpnn.plot.training_curves(histories, keys=["accuracy"], ax=ax,
                                  title=f"weights N(0, {std}²)")
    figure.suptitle("Deep ReLU MLP on the digits: plain vs BatchNorm")
    xpnn.plot.save(figure, args.out)
    print(f"figure written to {args.out}")
    return results


if __name__ == "__main__":
    main()
