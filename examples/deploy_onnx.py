"""Train the digits CNN, export it to ONNX and classify the test set with ONNX Runtime.

    python examples/deploy_onnx.py                     # 30 epochs, files in ./deploy_onnx
    python examples/deploy_onnx.py --epochs 2 --out /tmp/deploy

Trains the network of examples/digits_cnn.py on the same split, then writes two files into
``--out``: ``digits_cnn.onnx`` (``model.export``) and ``digits_test.npz`` (the test images and
labels). It prints xpnn's predicted classes and test accuracy, then runs
examples/onnx_predict.py, which imports only NumPy and ONNX Runtime, in a separate process on
those files: its two lines must be the same. Last, it times inference on the CPU, xpnn's
``model.predict`` against an ONNX Runtime session, taking turns: the whole test set in one
call (the best of ``--repeats``) and one image per call (the median of 10 × ``--repeats``).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import runpy
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import xpnn

HERE = Path(__file__).resolve().parent


def classes_line(who: str, classes: np.ndarray) -> str:
    """The line both programs print: one digit per test image."""
    return f"{who} predicted classes: " + "".join(map(str, classes))


def clock(run, batch: np.ndarray) -> float:
    """Seconds taken by one call ``run(batch)``."""
    start = time.perf_counter()
    run(batch)
    return time.perf_counter() - start


def timings(runners: dict, x: np.ndarray, repeats: int) -> tuple[dict, dict]:
    """For each runner (a function of a batch): the fastest of ``repeats`` calls on the whole
    of ``x``, and the median of 10 × ``repeats`` calls on one image. The runners take turns,
    call by call, so that a busy machine slows them alike."""
    for run in runners.values():  # warm-up
        run(x)
        run(x[:1])
    whole: dict[str, list[float]] = {who: [] for who in runners}
    single: dict[str, list[float]] = {who: [] for who in runners}
    for _ in range(repeats):
        for who, run in runners.items():
            whole[who].append(clock(run, x))
    for i in range(10 * repeats):
        image = x[i % len(x):i % len(x) + 1]
        for who, run in runners.items():
            single[who].append(clock(run, image))
    return ({who: min(times) for who, times in whole.items()},
            {who: float(np.median(times)) for who, times in single.items()})


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="deploy_onnx", help="directory for the two files")
    parser.add_argument("--repeats", type=int, default=20, help="timing repeats")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for the timed inference, xpnn's BLAS and ONNX Runtime "
                             "alike (default: each library's own default)")
    args = parser.parse_args()

    import onnxruntime as ort

    (x_train, y_train), (x_test, y_test) = xpnn.datasets.load_digits(seed=args.seed)
    x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
    build_cnn = runpy.run_path(str(HERE / "digits_cnn.py"))["build_cnn"]
    model = build_cnn(args.seed, "cpu")
    model.compile(loss="softmax_crossentropy", optimizer=xpnn.Adam(1e-3),
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, seed=args.seed, verbose=0)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path, data_path = out / "digits_cnn.onnx", out / "digits_test.npz"
    model.export(onnx_path)
    np.savez(data_path, x=x_test, y=y_test)
    print(f"trained the digits CNN for {args.epochs} epochs; wrote {onnx_path} "
          f"({onnx_path.stat().st_size / 1024:.0f} KiB) and {data_path}")

    classes = np.argmax(model.predict(x_test), axis=1)
    accuracy = float(np.mean(classes == y_test))
    ours = [classes_line("xpnn", classes),
            f"xpnn test accuracy: {accuracy:.4f} ({len(y_test)} images)"]
    print("\n".join(ours))

    result = subprocess.run([sys.executable, str(HERE / "onnx_predict.py"), str(onnx_path),
                             str(data_path)], capture_output=True, text=True, check=True)
    print(result.stdout, end="")
    theirs = [line.removeprefix("onnxruntime ") for line in result.stdout.splitlines()]
    identical = theirs == [line.removeprefix("xpnn ") for line in ours]
    print("identical classes and accuracy:", "yes" if identical else "NO")

    options = ort.SessionOptions()
    limit = contextlib.nullcontext()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn

        options.intra_op_num_threads = args.threads
        limit = threadpool_limits(args.threads)
    session = ort.InferenceSession(str(onnx_path), options,
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    with limit:
        whole, single = timings({
            "xpnn predict": lambda batch: model.predict(batch, batch_size=len(batch)),
            "onnxruntime": lambda batch: session.run(None, {name: batch}),
        }, x_test.astype(np.float32), args.repeats)
    threads = "default threads" if args.threads is None else f"{args.threads} thread(s)"
    print(f"inference on the CPU ({platform.machine()}, {threads}, numpy "
          f"{np.__version__}, onnxruntime {ort.__version__}):")
    for who in whole:
        print(f"  {who:13s} {len(x_test)} images in one call: {whole[who] * 1e3:7.2f} ms   "
              f"one image per call: {single[who] * 1e3:6.3f} ms")
    return {"accuracy": accuracy, "identical": identical, "whole": whole, "single": single}


if __name__ == "__main__":
    main()
