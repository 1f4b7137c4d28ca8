"""Six optimizers descend the elongated bowl f(x, y) = x²/20 + y² from (−7, 2): the classic
figure of their paths.

    python examples/optimizers_2d.py [--device cpu] [--seed 0] [--quick]
                                     [--out optimizers_2d.png]

f is twenty times steeper across the valley (y) than along it (x), so one learning rate cannot
suit both directions. The figure (after "Deep Learning from Scratch", chapter 6, with Nesterov
and RMSProp added) shows 30 steps of each optimizer over the contour lines of f:

- SGD (η = 0.95) zig-zags across the valley while it crawls along it;
- Momentum and Nesterov (η = 0.1, μ = 0.9) roll like a ball: they overshoot x = 0 and swing
  back, Nesterov's look-ahead damping the swing;
- AdaGrad (η = 1.5) and RMSProp (η = 0.3) divide each coordinate's step by the size of its
  own gradients, so both coordinates move alike: no zig-zag, almost straight to the minimum;
- Adam (η = 0.3) combines both: a momentum-like arc that settles in the valley.

The point is a real ``xpnn.Parameter`` on the chosen device; its gradient (x/10, 2y) is
computed there and each step is the optimizer's own ``step``, as in training. f starts at
6.45; the printed table gives each optimizer's final point and f (all below 0.11, AdaGrad and
RMSProp lowest).
"""

from __future__ import annotations

import argparse

import numpy as np

import xpnn
import xpnn.plot

START = (-7.0, 2.0)


def f(x, y):
    """The bowl x²/20 + y² (NumPy arrays or floats, on the host)."""
    return x**2 / 20.0 + y**2


def descend(optimizer: xpnn.optimizers.Optimizer, steps: int, backend) -> np.ndarray:
    """The (steps + 1, 2) host array of the points ``optimizer`` visits from START, computed
    on ``backend``'s device."""
    point = xpnn.Parameter("point", backend.asarray(np.array(START), dtype="float64"),
                           regularizable=False)
    # ∇f(x, y) = (x/10, 2y): the point times a constant vector, computed on the device
    gradient_scale = backend.asarray(np.array([0.1, 2.0]), dtype="float64")
    optimizer.build([point], backend)
    path = [backend.to_host(point.value)]
    for _ in range(steps):
        point.grad = gradient_scale * point.value
        optimizer.step([point])
        path.append(backend.to_host(point.value))
    return np.stack(path)


def main() -> dict[str, float]:
    """Run every optimizer from START; return each one's final value of f."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=0,
                        help="no effect: nothing here is random (every example takes it)")
    parser.add_argument("--quick", action="store_true", help="10 steps instead of 30")
    parser.add_argument("--out", default="optimizers_2d.png")
    args = parser.parse_args()
    steps = 10 if args.quick else 30

    backend = xpnn.get_backend(args.device)
    print(f"f(x, y) = x²/20 + y² from {START}, f = {f(*START):.2f}; {steps} steps on "
          f"{backend.device}")
    print(f"{'optimizer':<10}{'final x':>10}{'final y':>10}{'final f':>10}")
    optimizers = {
        "SGD": xpnn.SGD(0.95),
        "Momentum": xpnn.Momentum(0.1, momentum=0.9),
        "Nesterov": xpnn.Nesterov(0.1, momentum=0.9),
        "AdaGrad": xpnn.AdaGrad(1.5),
        "RMSProp": xpnn.RMSProp(0.3),
        "Adam": xpnn.Adam(0.3),
    }
    paths, final = {}, {}
    for name, optimizer in optimizers.items():
        path = descend(optimizer, steps, backend)
        paths[name] = path
        final[name] = float(f(*path[-1]))
        print(f"{name:<10}{path[-1, 0]:>10.4f}{path[-1, 1]:>10.4f}{final[name]:>10.4f}")
    xpnn.plot.optimizer_trajectories(f, paths, args.out,
                                     title=f"{steps} steps on f(x, y) = x²/20 + y²")
    print(f"figure written to {args.out}")
    return final


if __name__ == "__main__":
    main()
