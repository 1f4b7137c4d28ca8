"""The initial weights decide whether a signal survives a deep network: histograms of five
layers' activations under five initialisations.

    python examples/init_activations.py [--device cpu] [--seed 0] [--quick]
                                        [--out init_activations.png]

The experiment of "Deep Learning from Scratch", chapter 6: 1,000 random inputs of 100
standard-normal features go through five untrained layers Dense(100) + activation (biases 0).
Each row of the figure is one setting, each column one layer's activations:

- sigmoid, weights N(0, 1): the weighted sums are large (std ≈ 7), so the activations pile up
  at 0 and 1, where the sigmoid is flat and its gradient vanishes: about half of them are
  below 0.01 or above 0.99;
- sigmoid, N(0, 0.01²): the opposite; every unit outputs about 0.5 (std ≈ 0.013), all units
  say the same thing and the layers might as well be one;
- sigmoid, Xavier (Glorot normal, std √(2 / (fan_in + fan_out)) = 0.1): the activations stay
  spread (std ≈ 0.13 in every layer) and none is saturated;
- ReLU, Xavier: ReLU zeroes half of each layer's input, so the variance about halves at
  every layer: the std shrinks 0.58 → 0.18;
- ReLU, He (std √(2 / fan_in), twice Xavier's variance to make up for that half): the std stays
  at about 0.8 to 1.0 through all five layers. With the same seed the He weights are the
  Xavier weights times √2 and ReLU(cz) = c·ReLU(z) for c > 0, so these activations are the
  Xavier row's times √2ᵏ at layer k: the same shapes and zeros, only the scale differs.

Printed per setting: the std of each layer's activations, and the fraction of the last layer's
activations that are saturated (sigmoid: < 0.01 or > 0.99) or inactive (ReLU: exactly 0,
about half for any initialisation symmetric around 0). ReLU histograms leave out the zeros,
which would dwarf the rest.
"""

from __future__ import annotations

import argparse

import numpy as np

import xpnn
import xpnn.plot

plt = xpnn.plot.pyplot()  # matplotlib.pyplot, or an ImportError saying how to install it

DEPTH, WIDTH = 5, 100
# name: (activation layer, kernel initializer)
SETTINGS = {
    "sigmoid, N(0, 1)": (xpnn.Sigmoid, xpnn.initializers.Normal(1.0)),
    "sigmoid, N(0, 0.01²)": (xpnn.Sigmoid, xpnn.initializers.Normal(0.01)),
    "sigmoid, Xavier": (xpnn.Sigmoid, "glorot_normal"),
    "ReLU, Xavier": (xpnn.ReLU, "glorot_normal"),
    "ReLU, He": (xpnn.ReLU, "he_normal"),
}


def build(activation: type[xpnn.Layer], initializer: str | xpnn.initializers.Initializer,
          device: str | None, seed: int) -> xpnn.Sequential:
    """DEPTH layers Dense(WIDTH) + activation, kernels drawn from ``initializer``."""
    layers: list[xpnn.Layer] = []
    for _ in range(DEPTH):
        layers += [xpnn.Dense(WIDTH, kernel_initializer=initializer), activation()]
    model = xpnn.Sequential(layers, device=device, seed=seed)
    model.build((WIDTH,))
    return model


def activations(model: xpnn.Sequential, x: np.ndarray) -> list[np.ndarray]:
    """The outputs of the model's activation layers for the host batch ``x``, on the host."""
    outputs = model.layer_outputs(x)
    return [outputs[layer.name] for layer in model.layers if not isinstance(layer, xpnn.Dense)]


def saturated_fraction(activation: type[xpnn.Layer], values: np.ndarray) -> float:
    """The fraction of ``values`` where the activation's gradient (nearly) vanishes:
    σ < 0.01 or σ > 0.99 for the sigmoid, exactly 0 for ReLU."""
    if activation is xpnn.ReLU:
        return float(np.mean(values == 0))
    return float(np.mean((values < 0.01) | (values > 0.99)))


def main() -> dict[str, dict]:
    """Run every setting; return, per setting, the std of each layer's activations
    (``"std"``, a list) and the saturated fraction of the last layer's (``"saturated"``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="200 inputs instead of 1,000")
    parser.add_argument("--out", default="init_activations.png")
    args = parser.parse_args()
    samples = 200 if args.quick else 1000

    x = np.random.default_rng(args.seed).standard_normal((samples, WIDTH))
    figure, axes = plt.subplots(len(SETTINGS), DEPTH, figsize=(3 * DEPTH, 2.2 * len(SETTINGS)),
                                sharey="row", layout="constrained")
    results = {}
    print(f"{'setting':<22}{'std of each layer':<45}{'last layer saturated':>20}")
    for (name, (activation, initializer)), row in zip(SETTINGS.items(), axes, strict=True):
        per_layer = activations(build(activation, initializer, args.device, args.seed), x)
        stds = [float(np.std(values)) for values in per_layer]
        saturated = saturated_fraction(activation, per_layer[-1])
        results[name] = {"std": stds, "saturated": saturated}
        print(f"{name:<22}{'  '.join(f'{s:7.4f}' for s in stds):<45}{saturated:>20.1%}")
        value_range = (0.0, 3.0) if activation is xpnn.ReLU else (0.0, 1.0)
        for depth, (values, std, ax) in enumerate(zip(per_layer, stds, row, strict=True), 1):
            shown = values[values != 0] if activation is xpnn.ReLU else values.ravel()
            ax.hist(shown, bins=30, range=value_range)
            ax.set_title(f"layer {depth}: std {std:.3f}", fontsize=9)
        row[0].set_ylabel(name)

    figure.suptitle(f"Activations of {DEPTH} untrained layers of {WIDTH} units for {samples} "
                    "random inputs (ReLU: zeros not shown)")
    xpnn.plot.save(figure, args.out)
    print(f"figure written to {args.out}")
    return results


if __name__ == "__main__":
    main()
