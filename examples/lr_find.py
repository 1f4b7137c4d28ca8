"""The learning-rate range test on the digits MLP: sweep the rate, plot the loss, mark the
suggested rate, then train with it.

    python examples/lr_find.py [--device cpu] [--optimizer sgd] [--epochs 10] [--seed 0]
                               [--quick] [--out lr_find.png]

``xpnn.lr_find`` trains a copy of the model for a few hundred batches while the learning rate
grows exponentially from 1e-6 to 10, and records the smoothed loss. The loss stays flat while
the rate is too small, falls, then explodes; the suggestion is where it falls fastest. The
model itself is untouched. To show the suggestion is useful, the example then trains the model
for a few epochs at the suggested rate and, for comparison, at 100× less and 10× more, and
prints their test accuracies.
"""

from __future__ import annotations

import argparse

import xpnn
import xpnn.plot

OPTIMIZERS = {"sgd": xpnn.SGD, "momentum": xpnn.Momentum, "adam": xpnn.Adam}


def build(device: str | None, seed: int, optimizer: str, rate: float) -> xpnn.Sequential:
    """The digits MLP of examples/digits_mlp.py with the given optimizer and rate."""
    model = xpnn.Sequential([xpnn.Dense(256), xpnn.ReLU(), xpnn.Dense(128), xpnn.ReLU(),
                             xpnn.Dense(10)], device=device, seed=seed)
    model.compile("softmax_crossentropy", OPTIMIZERS[optimizer](rate), metrics=["accuracy"])
    return model


def main() -> dict[str, float]:
    """Run the range test; return the suggestion and the test accuracy at each rate tried."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a short sweep, for tests")
    parser.add_argument("--out", default="lr_find.png")
    args = parser.parse_args()
    steps, epochs = (30, 1) if args.quick else (300, args.epochs)

    (x_train, y_train), (x_test, y_test) = xpnn.datasets.load_digits(seed=args.seed)
    model = build(args.device, args.seed, args.optimizer, 1e-3)  # the rate is swept
    result = xpnn.lr_find(model, x_train, y_train, start_rate=1e-6, end_rate=10.0, steps=steps,
                          batch_size=32, seed=args.seed)
    print(f"swept {len(result.rates)} batches from {result.rates[0]:.1e} to "
          f"{result.rates[-1]:.1e}; lowest smoothed loss {min(result.losses):.3f} at rate "
          f"{result.minimum_rate:.2e}")
    if result.suggestion is None:
        print("no clear descent in this sweep: try more steps")
        suggestion = result.minimum_rate / 10
    else:
        suggestion = result.suggestion
        print(f"suggested learning rate: {suggestion:.2e} (steepest descent of the loss)")
    result.plot(args.out, title=f"Range test, {args.optimizer}, digits MLP")
    print(f"figure written to {args.out}")

    outcome = {"suggestion": suggestion}
    for label, rate in (("suggested / 100", suggestion / 100), ("suggested", suggestion),
                        ("suggested × 10", suggestion * 10)):
        trial = build(args.device, args.seed, args.optimizer, rate)
        trial.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0, seed=args.seed)
        accuracy = trial.evaluate(x_test, y_test)["accuracy"]
        outcome[label] = accuracy
        print(f"{epochs} epochs at {label:<16} ({rate:.2e}): test accuracy {accuracy:.4f}")
    return outcome


if __name__ == "__main__":
    main()
