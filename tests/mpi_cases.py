"""The programs ``tests/test_distributed.py`` runs under ``mpiexec -n 2``, and the models and
data they share with the single-process references the tests compute.

    mpiexec -n 2 python tests/mpi_cases.py CASE OUTDIR [ARGS...]

Each rank writes what it saw to ``OUTDIR/CASE.rank<r>.pkl`` (weights, History, the logs its
callbacks received, ...). The same builders run in one process give the reference.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
from pathlib import Path

import numpy as np

import xpnn

# -- data and models ---------------------------------------------------------------------------

def vectors(n, seed=0, features=6, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features))
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.3).astype(np.int64)
    return x, y % classes


def images(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 6, 6))
    y = (x[:, 0, :3].mean(axis=(1, 2)) > 0).astype(np.int64)
    return x, y


def dense_tanh():
    """The issue's model: Dense, Tanh, Momentum, float64."""
    model = xpnn.Sequential([xpnn.Dense(16), xpnn.Tanh(), xpnn.Dense(3)], dtype="float64",
                            seed=0)
    model.compile("softmax_crossentropy", xpnn.Momentum(0.05, 0.9), metrics=["accuracy"])
    return model


def synchronized_bn(device="cpu"):
    model = xpnn.Sequential([xpnn.Dense(16), xpnn.BatchNorm(synchronized=True), xpnn.Tanh(),
                             xpnn.Dense(3)], dtype="float64", seed=1, device=device)
    model.compile("softmax_crossentropy", xpnn.Momentum(0.05, 0.9), metrics=["accuracy"])
    return model


def synchronized_bn2d():
    model = xpnn.Sequential([xpnn.Conv2D(4, 3, padding=1), xpnn.BatchNorm2D(synchronized=True),
                             xpnn.ReLU(), xpnn.Flatten(), xpnn.Dense(2)], dtype="float64",
                            seed=2)
    model.compile("softmax_crossentropy", xpnn.Momentum(0.05, 0.9), metrics=["accuracy"])
    return model


def replica_bn_dropout():
    """Per-replica BatchNorm and Dropout: not equal to one process, but the ranks agree."""
    model = xpnn.Sequential([xpnn.Dense(16, weight_decay=1e-3), xpnn.BatchNorm(), xpnn.Tanh(),
                             xpnn.Dropout(0.3), xpnn.Dense(3)], dtype="float64", seed=3)
    model.compile("softmax_crossentropy", xpnn.Adam(0.01, clip_norm=1.0),
                  metrics=["accuracy"])
    return model


#: name -> (model builder, training data, validation data, fit arguments)
EQUIVALENCE = {
    # 201 samples, global batch 64: the last batch has 9 (5 and 4 rows)
    "dense": (dense_tanh, lambda: vectors(201), lambda: vectors(50, seed=9),
              {"epochs": 3, "batch_size": 64, "seed": 3}),
    "sync_bn": (synchronized_bn, lambda: vectors(201), lambda: vectors(50, seed=9),
                {"epochs": 3, "batch_size": 64, "seed": 3}),
    "sync_bn2d": (synchronized_bn2d, lambda: images(150), lambda: images(40, seed=9),
                  {"epochs": 3, "batch_size": 64, "seed": 3}),
    # 129 samples: the last batch has 1 sample, so rank 1 has none
    "sync_bn_empty_shard": (synchronized_bn, lambda: vectors(129), lambda: vectors(3, seed=9),
                            {"epochs": 3, "batch_size": 64, "seed": 4}),
    "dense_odd_batch": (dense_tanh, lambda: vectors(129), None,
                        {"epochs": 3, "batch_size": 7, "seed": 5}),
    # sample weights, and the last 20 % held out for validation (Keras's validation_split)
    "dense_weighted": (dense_tanh, lambda: vectors(201), None,
                       {"epochs": 3, "batch_size": 64, "seed": 3, "validation_split": 0.2,
                        "sample_weight": np.random.default_rng(1).uniform(0, 2, 201)}),
    # a device MPI cannot read (array-api-strict): every sum is staged through the host
    "sync_bn_strict": (lambda: synchronized_bn("strict"), lambda: vectors(201),
                       lambda: vectors(50, seed=9), {"epochs": 2, "batch_size": 64, "seed": 3}),
}


class Recorder(xpnn.Callback):
    """Keeps every log a callback receives (and asks for the batch loss)."""

    wants_batch_loss = True

    def __init__(self):
        super().__init__()
        self.events = []

    def on_epoch_end(self, epoch, logs):
        self.events.append(("epoch", epoch, dict(logs)))

    def on_batch_end(self, batch, logs):
        self.events.append(("batch", batch, dict(logs)))


def train(name, distributed):
    """Train one EQUIVALENCE case; returns what a rank (or the single process) reports."""
    build, data, validation, kwargs = EQUIVALENCE[name]
    model = build()
    recorder = Recorder()
    x, y = data()
    extra = {"validation_data": validation()} if validation is not None else {}
    history = model.fit(x, y, verbose=1 if distributed else 0, callbacks=[recorder],
                        distributed=distributed, **kwargs, **extra)
    evaluation = model.evaluate(x, y, batch_size=48, distributed=distributed, return_dict=True)
    result = {"weights": model.get_weights(), "history": history.history,
              "events": recorder.events, "evaluate": evaluation}
    if distributed:  # which sum the gradients went through
        group = xpnn.distributed.DataParallel.for_backend(xpnn.distributed.world(),
                                                          model.backend)
        result["shared_memory"] = group._buffer.shared is not None
        result["host_memory"] = model.backend.host_memory
    return result


# -- the programs ------------------------------------------------------------------------------

def case_equivalence(out, names):
    return {name: train(name, distributed=True) for name in names.split(",")}


def case_unseeded(out):
    """seed=None everywhere: the ranks must still agree on the batch order and weights."""
    model = xpnn.Sequential([xpnn.Dense(8), xpnn.Tanh(), xpnn.Dense(3)], dtype="float64")
    model.compile("softmax_crossentropy", xpnn.Momentum(0.05, 0.9))
    x, y = vectors(100)
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0, distributed=True)
    return {"weights": model.get_weights(), "history": history.history}


def case_replicas(out):
    """Per-replica BatchNorm and Dropout: the ranks end with the same model; their
    Dropout streams differ."""
    model = replica_bn_dropout()
    x, y = vectors(200)
    history = model.fit(x, y, epochs=2, batch_size=64, seed=1, verbose=0, distributed=True,
                        validation_data=vectors(40, seed=9))
    dropout = next(layer for layer in model.layers if isinstance(layer, xpnn.Dropout))
    return {"weights": model.get_weights(), "history": history.history,
            "dropout_state": dropout.generator.get_state(),
            "first_mask": np.asarray(dropout.generator.uniform((4, 16), "float64"))}


class Fail(xpnn.Callback):
    """Raises on one rank in the middle of an epoch (the other ranks go on into the next
    step's gradient sum and would wait forever)."""

    def __init__(self, rank, epoch=1, batch=2):
        super().__init__()
        self.rank, self.epoch, self.batch, self.current = rank, epoch, batch, 0

    def on_epoch_begin(self, epoch, logs):
        self.current = epoch

    def on_batch_end(self, batch, logs):
        if (xpnn.distributed.rank() == self.rank and self.current == self.epoch
                and batch == self.batch):
            raise RuntimeError(f"injected failure on rank {self.rank}")


def case_fault(out, where):
    x, y = vectors(400)
    model = dense_tanh()
    if where == "outside" and os.environ.get("PMI_RANK") == "1":  # before MPI is initialised
        time.sleep(0.5)
        raise RuntimeError("injected failure on rank 1 before fit")
    model.fit(x, y, epochs=1000, batch_size=16, verbose=0, distributed=True,
              callbacks=[Fail(1)])
    return {}


class StopOnRank(xpnn.Callback):
    """Sets ``stop_training`` on one rank only, after batch 2 of the first epoch."""

    def __init__(self, rank):
        super().__init__()
        self.rank = rank

    def on_batch_end(self, batch, logs):
        if batch == 2 and xpnn.distributed.rank() == self.rank:
            self.model.stop_training = True


def case_agreement(out):
    """A stop asked for on rank 1 only stops both ranks after the same batch; callbacks
    given to rank 0 only are refused on every rank (Horovod's habit of checkpointing from
    rank 0 would leave the other ranks out of the checkpoint's collective)."""
    x, y = vectors(400)
    model = dense_tanh()
    model.fit(x, y, epochs=3, batch_size=16, seed=0, verbose=0, distributed=True,
              callbacks=[StopOnRank(1)])
    result = {"position": (model.fit_position.epoch, model.fit_position.batch),
              "weights": model.get_weights()}
    only_rank_0 = ([xpnn.ModelCheckpoint(Path(out) / "c.xpnn")]
                   if xpnn.distributed.is_main() else [])
    try:
        model.fit(x, y, epochs=1, verbose=0, distributed=True, callbacks=only_rank_0)
    except ValueError as error:
        result["refused"] = str(error)
    return result


class Kill(xpnn.Callback):
    """SIGKILLs this process at (epoch, batch): the end a crash or a pre-empted node gives."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, 0

    def on_epoch_begin(self, epoch, logs):
        self.current = epoch

    def on_batch_end(self, batch, logs):
        if self.current == self.epoch and batch == self.batch and \
                xpnn.distributed.rank() == 1:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


RESUME_MODELS = {"dense": dense_tanh, "replicas": replica_bn_dropout}


def resume_fit(model, path, **kwargs):
    x, y = vectors(200)
    callbacks = [xpnn.ModelCheckpoint(path, every_batches=2), *kwargs.pop("callbacks", [])]
    return model.fit(x, y, epochs=3, batch_size=64, seed=7, verbose=0, callbacks=callbacks,
                     validation_data=vectors(40, seed=9), **kwargs)


def case_resume(out, mode, name):
    """``straight``: 3 epochs with checkpoints every 2 batches; ``killed``: the same, rank 1
    killed after batch 4 of epoch 2 (a checkpoint was taken after batch 3... of 4: see
    every_batches); ``resumed``: continue from the checkpoint."""
    model = RESUME_MODELS[name]()
    path = Path(out) / f"{name}.{mode if mode == 'straight' else 'run'}.xpnn"
    if mode == "straight":
        history = resume_fit(model, path, distributed=True)
    elif mode == "killed":
        resume_fit(model, path, distributed=True, callbacks=[Kill(epoch=1, batch=2)])
        raise AssertionError("the kill did not happen")
    else:
        history = resume_fit(model, path, distributed=True, resume_from=path)
    return {"weights": model.get_weights(), "history": history.history}


def case_notice(out):
    model = dense_tanh()
    x, y = vectors(64)
    model.fit(x, y, epochs=1, batch_size=32, seed=0, verbose=0, distributed=True)
    model.fit(x, y, epochs=1, batch_size=32, seed=0, verbose=0, distributed=True)
    return {"size": xpnn.distributed.size(), "rank": xpnn.distributed.rank()}


def main(argv):
    case, out, *args = argv
    result = globals()[f"case_{case}"](out, *args)
    rank = xpnn.distributed.rank()
    with open(Path(out) / f"{case}.rank{rank}.pkl", "wb") as file:
        pickle.dump(result, file)


if __name__ == "__main__":
    main(sys.argv[1:])
