"""A small GPT learns to write like Shakespeare's sonnets, next to char_rnn.py's LSTM given the
same wall-clock time.

    python examples/char_transformer.py                  # CPU: two budgets of 120 s
    python examples/char_transformer.py --budget 300     # longer for both models
    python examples/char_transformer.py --device cuda    # the same script on a GPU
    python examples/char_transformer.py --quick          # a seconds-long smoke run

The data and its split are char_rnn.py's (its ``windows`` function): 38 sonnets, the last
tenth held out, windows of ``--seq-len`` characters, each predicting the next character at
every step. The model is a decoder-only Transformer with pre-LN blocks::

    ids -> Embedding(vocab, d) + PositionalEmbedding(T, d) (learned)
        -> blocks × [ x + MultiHeadAttention(causal)(LayerNorm(x)),
                      x + Dense(d)(GELU(Dense(4d)(LayerNorm(x)))) ]
        -> LayerNorm -> Dense(vocab)

with GELU's tanh form, as in GPT-2 (NumPy has no erf: the exact form's polynomial costs
several times a tanh, time the budget would take from training).

Causal attention lets position t see the characters up to t only, so one window trains T
predictions at once, as the LSTM does. Both models train for the same wall-clock budget
(``--budget`` seconds each, held-out loss after every epoch, the best epoch's weights kept),
and the script prints both held-out losses in nats per character next to two baselines: a
uniform guess (log vocab) and the training text's character frequencies (the unigram
model). It then samples text at temperatures 0.5 and 1.0 (the last T characters as the
window: causal attention makes the characters after the current one irrelevant, so the
window is padded on the right), and draws the attention weights of every head of every
block on one line of verse (``--out``, a PNG).
"""

from __future__ import annotations

import argparse
import runpy
import time
from pathlib import Path

import numpy as np

import xpnn

HERE = Path(__file__).resolve().parent
CHAR_RNN = runpy.run_path(str(HERE / "char_rnn.py"))  # its data, split and windows
PROMPT = "Shall I compare thee"
LINE = "Shall I compare thee to a summer's day?"


class TimeBudget(xpnn.Callback):
    """Stop training after ``seconds`` of wall-clock time (checked after every batch)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def on_train_begin(self, logs: dict) -> None:
        self.start = time.perf_counter()

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


def gpt(vocab: int, steps: int, d_model: int, heads: int, blocks: int,
        **options) -> tuple[xpnn.Model, xpnn.Model]:
    """The GPT for windows of ``steps`` characters, and a second model on the same layers
    whose outputs are every block's attention weights (batch, heads, T, T)."""
    ids = xpnn.Input((steps,), name="ids")
    x = xpnn.PositionalEmbedding(steps, d_model)(xpnn.Embedding(vocab, d_model)(ids))
    maps = []
    for _ in range(blocks):
        attended, weights = xpnn.MultiHeadAttention(
            heads, d_model // heads, causal=True, return_attention_scores=True)(
            xpnn.LayerNormalization()(x))
        maps.append(weights)
        x = xpnn.Add()([x, attended])
        hidden = xpnn.GELU("tanh")(xpnn.Dense(4 * d_model)(xpnn.LayerNormalization()(x)))
        x = xpnn.Add()([x, xpnn.Dense(d_model)(hidden)])
    logits = xpnn.Dense(vocab, name="logits")(xpnn.LayerNormalization()(x))
    model = xpnn.Model(ids, logits, name="gpt", **options)
    return model, xpnn.Model(ids, maps, name="attention_maps", **options)


def lstm(vocab: int, units: int, **options) -> xpnn.Sequential:
    """char_rnn.py's model."""
    return xpnn.Sequential([xpnn.Embedding(vocab, 32), xpnn.LSTM(units, return_sequences=True),
                            xpnn.Dense(vocab)], **options)


def train(model: xpnn.Model, data: tuple, budget: float, learning_rate: float,
          seed: int) -> dict:
    """Adam with gradient clipping for ``budget`` seconds; the best epoch's weights."""
    x_train, y_train, x_val, y_val = data
    model.compile(xpnn.SoftmaxCrossEntropy(), xpnn.Adam(learning_rate, clip_norm=1.0))
    stopper = xpnn.EarlyStopping("val_loss", patience=1_000_000)  # keeps the best weights
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=1_000_000, batch_size=32, verbose=0,
                        validation_data=(x_val, y_val), seed=seed,
                        callbacks=[TimeBudget(budget), stopper])
    seconds = time.perf_counter() - start
    best = stopper.best_epoch
    return {"seconds": seconds, "epochs": len(history.epoch), "best_epoch": best,
            "loss": history["loss"][best], "val_loss": history["val_loss"][best],
            "parameters": model.count_params()}


def unigram_nats(train_ids: np.ndarray, held_out: np.ndarray, vocab: int) -> float:
    """Cross-entropy of the held-out characters under the training text's character
    frequencies (add-one smoothed), in nats per character."""
    counts = np.bincount(train_ids, minlength=vocab) + 1.0
    return float(-np.mean(np.log(counts[held_out] / counts.sum())))


def generate(model: xpnn.Model, vocab: list[str], prompt: str, length: int,
             temperature: float, rng: np.random.Generator) -> str:
    """``prompt`` and ``length`` sampled characters: each from softmax(logits / temperature)
    at the last position of the window of the latest T characters."""
    steps = model.input_specs[0].shape[0]
    index = {char: i for i, char in enumerate(vocab)}
    ids = [index[char] for char in prompt]
    for _ in range(length):
        context = ids[-steps:]
        window = np.zeros((1, steps), dtype=np.int64)  # right padding: never attended to
        window[0, :len(context)] = context
        logits = model.predict(window)[0, len(context) - 1].astype(np.float64) / temperature
        probabilities = np.exp(logits - logits.max())
        ids.append(int(rng.choice(len(vocab), p=probabilities / probabilities.sum())))
    return "".join(vocab[i] for i in ids)


def draw_attention(maps_model: xpnn.Model, vocab: list[str], line: str, path: Path) -> None:
    """Every head's attention weights on ``line``, one row of panels per block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = maps_model.input_specs[0].shape[0]
    line = line[:steps]
    window = np.zeros((1, steps), dtype=np.int64)
    window[0, :len(line)] = [vocab.index(char) for char in line]
    maps = maps_model.predict(window)
    maps = maps if isinstance(maps, list) else [maps]
    heads = maps[0].shape[1]
    figure, axes = plt.subplots(len(maps), heads, figsize=(3.2 * heads, 3.2 * len(maps)),
                                squeeze=False)
    labels = [char if char != " " else "␣" for char in line]
    for block, weights in enumerate(maps):
        for head in range(heads):
            ax = axes[block][head]
            ax.imshow(weights[0, head, :len(line), :len(line)], cmap="viridis", vmin=0.0)
            ax.set_title(f"block {block + 1}, head {head + 1}", fontsize=9)
            ax.set_xticks(range(len(line)), labels, fontsize=5)
            ax.set_yticks(range(len(line)), labels, fontsize=5)
    figure.suptitle(f"causal attention on {line!r} (row: query, column: key)", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:N, auto or strict (default: $XPNN_DEVICE or cpu)")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="seconds of training for each model")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=96)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--units", type=int, default=192, help="the LSTM's units")
    parser.add_argument("--length", type=int, default=300, help="characters to generate")
    parser.add_argument("--out", default="char_transformer_attention.png",
                        help="the attention maps (PNG)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    args = parser.parse_args()
    if args.quick:
        args.budget, args.seq_len, args.d_model, args.heads = 2.0, 32, 32, 2
        args.blocks, args.units, args.length = 2, 32, 40

    text = CHAR_RNN["CORPUS"].read_text(encoding="ascii")
    if args.quick:
        text = text[:4000]
    vocab = sorted(set(text))
    ids = np.array([vocab.index(char) for char in text], dtype=np.int64)
    split = int(0.9 * len(ids))
    windows = CHAR_RNN["windows"]
    x_train, y_train = windows(ids[:split], args.seq_len, stride=args.seq_len // 4)
    x_val, y_val = windows(ids[split:], args.seq_len, stride=args.seq_len)
    data = (x_train, y_train, x_val, y_val)
    print(f"{len(text):,} characters, {len(vocab)} distinct; {len(x_train)} training and "
          f"{len(x_val)} held-out windows of {args.seq_len}")

    model, maps_model = gpt(len(vocab), args.seq_len, args.d_model, args.heads, args.blocks,
                            device=args.device, seed=args.seed)
    model.summary()
    results = {"gpt": train(model, data, args.budget, 1e-3, args.seed),
               "lstm": train(lstm(len(vocab), args.units, device=args.device,
                                  seed=args.seed), data, args.budget, 3e-3, args.seed)}
    uniform, unigram = np.log(len(vocab)), unigram_nats(ids[:split], y_val.ravel(), len(vocab))
    print(f"\nheld-out loss after {args.budget:g} s of training each on {model.device} "
          "(nats per character; the best epoch's):")
    for name, result in results.items():
        print(f"  {name:<5} {result['val_loss']:.3f}  (training {result['loss']:.3f}; "
              f"{result['parameters']:,} parameters, {result['epochs']} epochs in "
              f"{result['seconds']:.0f} s, best epoch {result['best_epoch'] + 1})")
    print(f"  unigram {unigram:.3f}  (character frequencies of the training text)\n"
          f"  uniform {uniform:.3f}  (log {len(vocab)})")

    rng = np.random.default_rng(args.seed)
    samples = {}
    for temperature in (0.5, 1.0):
        samples[temperature] = generate(model, vocab, PROMPT, args.length, temperature, rng)
        print(f"\n--- temperature {temperature} ---\n{samples[temperature]}")
    out = Path(args.out)
    draw_attention(maps_model, vocab, LINE, out)
    print(f"\nattention maps of {LINE!r}: {out}")
    return {"gpt": results["gpt"], "lstm": results["lstm"], "unigram": unigram,
            "uniform": uniform, "vocab_size": len(vocab), "samples": samples,
            "figure": out, "budget": args.budget}


if __name__ == "__main__":
    main()
