"""Train a small convolutional network on MNIST (or Fashion-MNIST) and report test accuracy.

    python examples/mnist_cnn.py                   # CPU (or $XPNN_DEVICE), 3 epochs
    python examples/mnist_cnn.py --device cuda     # the same script on a GPU
    python examples/mnist_cnn.py --limit 2000      # a quick run on the first 2,000 images
    python examples/mnist_cnn.py --fashion         # Zalando's Fashion-MNIST instead

The first run downloads the dataset (about 11 MB, 30 MB for Fashion-MNIST) into
$XPNN_DATA or ~/.cache/xpnn; later runs read it from there without the network.
"""

from __future__ import annotations

import argparse
import sys
import time

import xpnn


def main() -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:N, auto or strict (default: $XPNN_DEVICE or cpu)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fashion", action="store_true",
                        help="use Fashion-MNIST (clothes) instead of the MNIST digits")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="train on the first N training images only (a quick run)")
    args = parser.parse_args()

    name = "Fashion-MNIST" if args.fashion else "MNIST"
    load = xpnn.datasets.fashion_mnist if args.fashion else xpnn.datasets.mnist
    try:
        (x_train, y_train), (x_test, y_test) = load()
    except xpnn.DatasetUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    print(f"{name}: {len(x_train)} training and {len(x_test)} test images of 28x28 pixels")

    # Two 3x3 convolutions, each followed by 2x2 max pooling: 28x28 -> 14x14 -> 7x7.
    model = xpnn.Sequential(
        [xpnn.Conv2D(16, 3, padding="same"), xpnn.ReLU(), xpnn.MaxPool2D(2),
         xpnn.Conv2D(32, 3, padding="same"), xpnn.ReLU(), xpnn.MaxPool2D(2),
         xpnn.Flatten(), xpnn.Dense(64), xpnn.ReLU(), xpnn.Dense(10)],
        device=args.device, seed=args.seed)
    model.compile(loss="softmax_crossentropy", optimizer=xpnn.Adam(1e-3),
                  metrics=["accuracy"])
    model.build((1, 28, 28))
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
