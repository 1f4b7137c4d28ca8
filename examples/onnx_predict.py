"""Classify images with an exported ONNX model, using only NumPy and ONNX Runtime (no xpnn).

    python examples/onnx_predict.py digits_cnn.onnx digits_test.npz

The ``.npz`` holds ``x`` (the images, NCHW) and optionally ``y`` (their labels);
``examples/deploy_onnx.py`` writes both files. Prints the predicted class of every image and,
with labels, the accuracy, in the same format as deploy_onnx.py prints xpnn's.
"""

from __future__ import annotations

import argparse

import numpy as np
import onnxruntime as ort


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the .onnx file")
    parser.add_argument("data", help="a .npz file with x (and y)")
    args = parser.parse_args()

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    [model_input] = session.get_inputs()
    with np.load(args.data) as data:
        x = data["x"].astype(np.float32)
        y = data.get("y")
    scores = session.run(None, {model_input.name: x})[0]
    classes = np.argmax(scores, axis=1)
    print("onnxruntime predicted classes:", "".join(map(str, classes)) if scores.shape[1] <= 10
          else " ".join(map(str, classes)))
    accuracy = None
    if y is not None:
        accuracy = float(np.mean(classes == y))
        print(f"onnxruntime test accuracy: {accuracy:.4f} ({len(y)} images)")
    return {"classes": classes, "accuracy": accuracy}


if __name__ == "__main__":
    main()
