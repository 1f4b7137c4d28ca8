"""Plain against residual networks at depth 4, 16 and 32 on the 8×8 digits: the degradation
problem of He et al. (2015), "Deep Residual Learning for Image Recognition".

    python examples/residual_depth.py --out residual.png       # CPU: about a minute
    python examples/residual_depth.py --quick --out r.png      # a seconds-long smoke run

Both networks have the same layers: a Dense stem, then ``depth`` Dense(width) + ReLU layers,
then a Dense classifier, trained the same way (SGD with momentum, He initialisation, no
normalisation). The residual one groups the hidden layers in pairs and adds each pair's input
to its output, h ← h + W₂ relu(W₁ relu(h)) (a graph model: ``xpnn.Add`` joins the skip and
the branch; each block starts as the identity), so that the gradient reaching the stem is
the identity plus the branches' contributions rather than a product of ``depth``
Jacobians. Deeper plain networks train worse — not because they overfit (their *training*
loss is higher) but because optimisation through many layers is hard; the residual
networks keep improving with depth.
The script prints the final training loss and test accuracy of each, and draws the training
loss per epoch for each depth (a PNG).
"""

from __future__ import annotations

import argparse
import time

import xpnn
import xpnn.plot

plt = xpnn.plot.pyplot()  # matplotlib.pyplot, or an ImportError saying how to install it


def plain(depth: int, width: int, seed: int, device: str | None) -> xpnn.Model:
    """Stem, ``depth`` × (Dense(width), ReLU), classifier: a chain (Sequential)."""
    layers: list[xpnn.Layer] = [xpnn.Dense(width)]
    for _ in range(depth):
        layers += [xpnn.ReLU(), xpnn.Dense(width)]
    return xpnn.Sequential([*layers, xpnn.ReLU(), xpnn.Dense(10)], device=device, seed=seed)


def residual(depth: int, width: int, seed: int, device: str | None) -> xpnn.Model:
    """Stem, ``depth // 2`` residual blocks h ← h + W₂ relu(W₁ relu(h)), classifier: the
    same layers as :func:`plain`, with a skip around every pair.

    W₂ starts at zero, so every block starts as the identity (Goyal et al. 2017, Zhang et
    al. 2019, "Fixup"): without normalisation, each block would otherwise add a branch of
    the same variance as its input and the signal would double block after block."""
    x = xpnn.Input((64,), name="pixels")
    h = xpnn.Dense(width, name="stem")(x)
    for _ in range(depth // 2):
        branch = xpnn.Dense(width, kernel_initializer="zeros")(
            xpnn.ReLU()(xpnn.Dense(width)(xpnn.ReLU()(h))))
        h = xpnn.Add()([h, branch])
    logits = xpnn.Dense(10, name="logits")(xpnn.ReLU()(h))
    return xpnn.Model(x, logits, device=device, seed=seed)


def train(make, depth: int, data: tuple, args: argparse.Namespace) -> dict:
    """Train one network; its History, final training loss and test accuracy."""
    (x_train, y_train), (x_test, y_test) = data
    model = make(depth, args.width, args.seed, args.device)
    model.compile("softmax_crossentropy", xpnn.Momentum(args.learning_rate, 0.9),
                  metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0,
                        seed=args.seed)
    return {"history": history, "seconds": time.perf_counter() - start,
            "train_loss": history["loss"][-1],
            "test_accuracy": model.evaluate(x_test, y_test)["accuracy"],
            "params": model.count_params()}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:N, auto or strict (default: $XPNN_DEVICE or cpu)")
    parser.add_argument("--depths", type=int, nargs="+",
                        help="hidden layers of each network (default 4 16 32; --quick: 2 8)")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--epochs", type=int, help="default 30 (--quick: 3)")
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="residual_depth.png", help="the figure (PNG)")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    args = parser.parse_args()
    args.depths = args.depths or ([2, 8] if args.quick else [4, 16, 32])
    args.epochs = args.epochs or (3 if args.quick else 30)

    data = xpnn.datasets.load_digits(seed=args.seed)
    print(f"digits: {len(data[0][0])} training, {len(data[1][0])} test samples; "
          f"{args.epochs} epochs of SGD with momentum, η = {args.learning_rate}")
    print(f"{'depth':>5} {'network':<9} {'params':>7} {'train loss':>11} {'test acc':>9} "
          f"{'time':>6}")
    results: dict = {}
    for depth in args.depths:
        for name, make in (("plain", plain), ("residual", residual)):
            result = results[(name, depth)] = train(make, depth, data, args)
            print(f"{depth:>5} {name:<9} {result['params']:>7,} "
                  f"{result['train_loss']:>11.4f} {result['test_accuracy']:>9.4f} "
                  f"{result['seconds']:>5.1f}s")
    draw(results, args)
    return results


def draw(results: dict, args: argparse.Namespace) -> None:
    """The training loss per epoch: one panel per network, one curve per depth."""
    figure, panels = plt.subplots(1, 2, figsize=(10, 4), sharey=True, layout="constrained")
    for panel, name in zip(panels, ("plain", "residual"), strict=True):
        for depth in args.depths:
            losses = results[(name, depth)]["history"]["loss"]
            panel.semilogy(range(1, len(losses) + 1), losses, marker=".",
                           label=f"{depth} hidden layers")
        panel.set(title=f"{name} network", xlabel="epoch", ylabel="training loss")
        panel.legend()
    xpnn.plot.save(figure, args.out)
    print(f"figure written to {args.out}")


if __name__ == "__main__":
    main()
