"""Train an MLP on the 8×8 handwritten digits of scikit-learn and report test accuracy.

    python examples/digits_mlp.py                  # CPU (or $XPNN_DEVICE), 30 epochs
    python examples/digits_mlp.py --device cuda    # the same script on a GPU
    mpiexec -n 2 python examples/digits_mlp.py --distributed   # data-parallel on 2 processes

With ``--distributed`` every process runs this script on the whole data set; ``fit`` and
``evaluate`` split each batch among them and combine the gradients and the results
(``xpnn.distributed``), and only rank 0 prints.
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
    parser.add_argument("--batch-size", type=int, default=32,
                        help="the global batch: shared among the processes with --distributed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distributed", action="store_true",
                        help="train data-parallel with the other processes of the MPI job "
                             "(mpiexec -n N python examples/digits_mlp.py --distributed)")
    args = parser.parse_args()
    say = print if xpnn.distributed.is_main() else (lambda *_: None)

    (x_train, y_train), (x_test, y_test) = xpnn.datasets.load_digits(seed=args.seed)
    say(f"digits: {len(x_train)} training and {len(x_test)} test images of 8x8 pixels")

    model = xpnn.Sequential(
        [xpnn.Dense(256), xpnn.ReLU(), xpnn.Dense(128), xpnn.ReLU(), xpnn.Dense(10)],
        device=args.device, seed=args.seed)
    model.compile(loss="softmax_crossentropy", optimizer=xpnn.Adam(1e-3),
                  metrics=["accuracy"])
    model.build((64,))
    model.summary(print_fn=say)

    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              validation_data=(x_test, y_test), seed=args.seed, verbose=1,
              distributed=args.distributed)
    seconds = time.perf_counter() - start
    accuracy = model.evaluate(x_test, y_test, distributed=args.distributed)["accuracy"]
    processes = xpnn.distributed.size() if args.distributed else 1
    say(f"test accuracy: {accuracy:.4f} ({args.epochs} epochs in {seconds:.1f} s on "
        f"{model.device}, {processes} process{'es' if processes > 1 else ''})")
    return accuracy


if __name__ == "__main__":
    main()
