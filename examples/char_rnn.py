"""A character-level language model: an LSTM learns to write like Shakespeare's sonnets.

    python examples/char_rnn.py                   # CPU: about a minute
    python examples/char_rnn.py --device cuda     # the same script on a GPU
    python examples/char_rnn.py --quick           # a seconds-long smoke run

The corpus is 38 sonnets (about 24 KB, public domain; see examples/data/README.md). The text
is cut into overlapping windows of ``--seq-len`` characters; the model reads a window and
predicts, at every step, the next character::

    Embedding(vocab, 32) -> LSTM(units, return_sequences=True) -> Dense(vocab)

trained with the softmax cross-entropy over (batch, time) and Adam with gradient clipping
(``clip_norm``). The last tenth of the text is held out: its loss is printed each epoch next
to the training loss (both in nats per character), and training stops once it has not
improved for 3 epochs, keeping the best epoch's weights (the corpus is small, so the model
soon starts to memorise it). Text is then generated one character at a time, carrying
the LSTM's state (h, c) from step to step with the standalone layer API
(``initial_state=`` and ``return_state=True``) and sampling each character from
softmax(logits / temperature): at 0.5 the model picks likely characters (safer, more
repetitive text), at 1.0 it samples its learned distribution as it is.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import xpnn
from xpnn.layers import BuildContext

CORPUS = Path(__file__).resolve().parent / "data" / "sonnets.txt"
PROMPT = "Shall I compare thee"


def windows(ids: np.ndarray, length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ids[i : i + length] and targets ids[i + 1 : i + length + 1] for i = 0,
    stride, 2·stride, ..."""
    starts = np.arange(0, len(ids) - length - 1, stride)
    x = np.stack([ids[s:s + length] for s in starts])
    y = np.stack([ids[s + 1:s + length + 1] for s in starts])
    return x, y


def sampler(model: xpnn.Sequential) -> list[xpnn.Layer]:
    """One-step copies of the model's layers, sharing its trained arrays: an Embedding and
    an LSTM for sequences of length 1 (the LSTM returning its state) and the Dense."""
    embedding, lstm, dense = model.layers
    steps = [xpnn.Embedding(embedding.vocab_size, embedding.dim),
             xpnn.LSTM(lstm.units, return_state=True), xpnn.Dense(dense.units)]
    shapes = [(1,), (1, embedding.dim), (lstm.units,)]
    for step, trained, shape in zip(steps, model.layers, shapes, strict=True):
        step.build(shape, BuildContext(model.backend, model.dtype, np.random.default_rng(0)))
        for mine, theirs in zip(step.parameters(), trained.parameters(), strict=True):
            mine.value = theirs.value
    return steps


def generate(model: xpnn.Sequential, vocab: list[str], prompt: str, length: int,
             temperature: float, rng: np.random.Generator) -> str:
    """``prompt`` followed by ``length`` sampled characters."""
    embedding, lstm, dense = sampler(model)
    index = {char: i for i, char in enumerate(vocab)}
    state, text, logits = None, list(prompt), None
    with model.backend.scope():
        for position in range(len(prompt) + length):
            if position >= len(prompt):  # sample the next character from the last logits
                scaled = logits / temperature
                probabilities = np.exp(scaled - scaled.max())
                probabilities /= probabilities.sum()
                text.append(vocab[rng.choice(len(vocab), p=probabilities)])
            token = model.backend.asarray(np.array([[index[text[position]]]]), "int64")
            output, *state = lstm(embedding(token), initial_state=state)
            logits = model.backend.to_host(dense(output))[0].astype(np.float64)
    return "".join(text)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:N, auto or strict (default: $XPNN_DEVICE or cpu)")
    parser.add_argument("--epochs", type=int, default=30, help="at most this many epochs")
    parser.add_argument("--units", type=int, default=192)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--length", type=int, default=300, help="characters to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.units, args.seq_len, args.length = 2, 32, 32, 40

    text = CORPUS.read_text(encoding="ascii")
    if args.quick:
        text = text[:4000]
    vocab = sorted(set(text))
    ids = np.array([vocab.index(char) for char in text], dtype=np.int64)
    split = int(0.9 * len(ids))
    x_train, y_train = windows(ids[:split], args.seq_len, stride=args.seq_len // 4)
    x_val, y_val = windows(ids[split:], args.seq_len, stride=args.seq_len)
    print(f"{len(text):,} characters, {len(vocab)} distinct; {len(x_train)} training and "
          f"{len(x_val)} held-out windows of {args.seq_len}")

    model = xpnn.Sequential([
        xpnn.Embedding(len(vocab), 32),
        xpnn.LSTM(args.units, return_sequences=True),
        xpnn.Dense(len(vocab)),
    ], device=args.device, seed=args.seed)
    model.compile(xpnn.SoftmaxCrossEntropy(), xpnn.Adam(3e-3, clip_norm=5.0),
                  metrics=["accuracy"])
    model.build((args.seq_len,))
    model.summary()

    start = time.perf_counter()
    stopper = xpnn.EarlyStopping("val_loss", patience=3)
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=2,
                        validation_data=(x_val, y_val), seed=args.seed, callbacks=[stopper])
    seconds = time.perf_counter() - start
    best = stopper.best_epoch
    print(f"trained {len(history.epoch)} epochs in {seconds:.0f} s on {model.device}; best "
          f"epoch {best + 1}: loss {history['loss'][best]:.3f}, held out "
          f"{history['val_loss'][best]:.3f} nats per character (a uniform guess scores "
          f"{np.log(len(vocab)):.3f})")

    rng = np.random.default_rng(args.seed)
    samples = {}
    for temperature in (0.5, 1.0):
        samples[temperature] = generate(model, vocab, PROMPT, args.length, temperature, rng)
        print(f"\n--- temperature {temperature} ---\n{samples[temperature]}")
    return {"loss": history["loss"], "val_loss": history["val_loss"], "best_epoch": best,
            "samples": samples, "vocab_size": len(vocab), "seconds": seconds}


if __name__ == "__main__":
    main()
