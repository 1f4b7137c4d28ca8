"""Every tolerance of the test suite, per dtype, in one place.

PARITY: one forward or backward on a lane against the NumPy float64 reference. float32 keeps
about 7 significant digits; sums over a few dozen terms lose one or two.
TRAINING: parameters after N training steps on a lane against the float64 reference run;
rounding differences compound over the steps.
ONNX: an exported model run by ONNX Runtime (or by onnx's reference evaluator) against
``model.predict`` on the same inputs: the same arithmetic in other kernels and another
summation order, no training steps in between.
GRADCHECK: the largest relative error |a − n| / max(1, |a|, |n|) accepted from a central
difference check in float64 (step 1e-6: truncation ~1e-12, rounding ~1e-10).
"""

PARITY = {
    "float32": {"rtol": 1e-4, "atol": 1e-5},
    "float64": {"rtol": 1e-10, "atol": 1e-12},
}

TRAINING = {
    "float32": {"rtol": 1e-3, "atol": 1e-4},
    "float64": {"rtol": 1e-9, "atol": 1e-10},
}

ONNX = {
    "float32": {"rtol": 1e-4, "atol": 1e-5},
    "float64": {"rtol": 1e-10, "atol": 1e-12},
}

GRADCHECK = 1e-6
