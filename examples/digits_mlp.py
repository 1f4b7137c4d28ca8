"""Train an MLP on the 8×8 handwritten digits of scikit-learn and report test accuracy.

    python examples/digits_mlp.py                  # CPU (or $XPNN_DEVICE), 30 epochs
    python examples/digits_mlp.py --device cuda    # the same script on a GPU
"""

from __future__ import annotations

import argparse
import time

import xpnn


def main() -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:N, auto or strict (default: $XPNN_DEVICE or cpu)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = xpnn.datasets.load_digits(seed=args.seed)
    print(f"digits: {len(x_train)} training and {len(x_test)} test images of 8x8 pixels")

    model = xpnn.Sequential(
        [xpnn.Dense(256), xpnn.ReLU(), xpnn.Dense(128), xpnn.ReLU(), xpnn.Dense(10)],
        device=args.device, seed=args.seed)
    model.compile(loss="softmax_crossentropy", optimizer=xpnn.Adam(1e-3),
                  metrics=["accuracy"])
    model.build((64,))
    model.summary()

    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              validation_data=(x_test, y_test), seed=args.seed, verbose=1)
    seconds = time.perf_counter() - start
    accuracy = model.evaluate(x_test, y_test)["accuracy"]
    print(f"test accuracy: {accuracy:.4f} ({args.epochs} epochs in {seconds:.1f} s "
          f"on {model.device})")
    return accuracy


if __name__ == "__main__":
    main()
