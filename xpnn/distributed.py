"""Data-parallel training over MPI: ``mpiexec -n N python train.py`` starts N copies of one
script, and ``fit(..., distributed=True)`` makes them train one model together.

Install the ``mpi`` extra (``pip install 'xpnn[mpi]'``: mpi4py and the MPICH wheel, whose
``mpiexec`` lands in the environment's ``bin/``). Without an MPI launcher, without mpi4py,
or with N = 1, ``distributed=True`` does nothing but print a one-line notice.

What N processes (ranks) do, for a global batch of B samples:

- **Start.** Every rank holds the whole data set and the same model code. ``fit`` takes
  rank 0's batch-order seed (drawn on rank 0 when ``seed=None``), checks that every rank has
  the same number of samples, and copies rank 0's parameters and optimizer state to every
  rank (and, with ``resume_from``, rank 0 reads the checkpoint and sends it on).
- **Sharding.** All ranks draw the same batch order. Each takes a contiguous share of every
  batch: rank r gets m_r = ⌊B/N⌋ or ⌈B/N⌉ rows (the first B mod N ranks one more), so an
  uneven last batch is split too (a rank may get none).
- **Gradients.** The loss of a batch is the mean over its B samples,
  L = (1/B) Σ_i ℓ_i = Σ_r (m_r/B) L_r with L_r the mean over rank r's rows. Each rank seeds
  its backward pass with (m_r/B) dL_r/dŷ, so its parameter gradients are its share of
  dL/dθ, and one in-place sum over the ranks (``Allreduce`` of one flat buffer) gives every
  rank dL/dθ = Σ_r (m_r/B) dL_r/dθ: the update one process makes at batch size B, uneven
  last batches included. L2 terms and clipping (``Optimizer.gradients``) then act on the
  summed gradient, as in one process. Parameters stay identical on every rank: each applies
  the same update to the same values (MPI returns the same sum to every rank).
- **Reductions.** The running loss and metric sums (total, count) of an epoch are summed
  over the ranks before they are read, so the History, the epoch logs every callback sees
  and the validation values are the same on every rank and equal the single-process ones
  (to rounding). Validation and ``evaluate(distributed=True)`` give each rank a contiguous
  share of the data. A callback's ``model.stop_training`` ends training on every rank when
  any rank set it.
- **BatchNorm.** Statistics are per replica by default (each rank normalises its m_r rows);
  the running statistics are then averaged over the ranks at the end of every epoch and
  before a checkpoint, so every rank holds the same model. ``BatchNorm(synchronized=True)``
  (and ``BatchNorm2D``) sums the statistics over the ranks instead, so training equals one
  process (see :class:`~xpnn.layers.normalization.BatchNorm`).
- **Dropout.** Masks differ per rank: rank 0 keeps the layer's generator, rank r > 0 draws
  from one seeded by (the layer's seed, r). Checkpoints keep every rank's position.
- **Output and files.** The progress bar and callback messages appear on rank 0 only;
  callbacks run on every rank with identical logs; a checkpoint is written by rank 0 alone
  (atomically), after the other ranks sent it their generator positions and running sums,
  so ``model.save_checkpoint`` in a distributed ``fit`` must be called on every rank (the
  ``ModelCheckpoint`` callback and ``fit(checkpoint=...)`` do).
- **Faults.** An exception inside a distributed ``fit``/``evaluate`` that not every rank
  raised together prints that rank's traceback and calls ``MPI_Abort``, which ends every
  rank at once; once a process has joined a job of several ranks, an uncaught exception
  anywhere does the same (as ``python -m mpi4py`` does). Nothing waits forever for a rank
  that died.

Devices: NumPy arrays are reduced in place by MPI; arrays on other devices go through one
host copy each way, except on CuPy with NCCL, where the backend's device collectives
(:mod:`xpnn.backends.nccl`, bootstrapped over MPI) sum them on the GPUs.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

if TYPE_CHECKING:
    from xpnn.backends.base import Backend
    from xpnn.history import TrainingPosition
    from xpnn.layers.base import Parameter

T = TypeVar("T")
Array = Any

#: Variables an MPI launcher sets in the processes it starts (MPICH's and Intel MPI's hydra,
#: Slurm's PMI and PMIx, Open MPI, MVAPICH): their presence is what makes xpnn join a job.
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE",
                      "MV2_COMM_WORLD_SIZE")
#: Variables holding a process's rank among the processes of its machine.
LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK",
                        "MV2_COMM_WORLD_LOCAL_RANK", "PMI_LOCAL_RANK", "SLURM_LOCALID")
#: The attribute that marks an exception raised on every rank together (no abort needed).
AGREED = "xpnn_raised_on_every_rank"

_world: Communicator | None = None
_world_checked = False
_why_alone = "this process was not started by an MPI launcher (mpiexec -n N python ...)"
_noticed = False
_active: DataParallel | None = None


# == the job ==================================================================================

def launched_by_mpi() -> bool:
    """Whether an MPI launcher started this process (or the program initialised MPI
    itself through mpi4py)."""
    if any(name in os.environ for name in LAUNCHER_VARIABLES):
        return True
    module = sys.modules.get("mpi4py.MPI")
    return module is not None and module.Is_initialized() and not module.Is_finalized()


def world() -> Communicator | None:
    """The communicator of every process of the job (``MPI.COMM_WORLD``), created (and MPI
    initialised) on first use; None when this process was not started by an MPI launcher
    or mpi4py is missing."""
    global _world, _world_checked, _why_alone
    if _world_checked:
        return _world
    _world_checked = True
    if not launched_by_mpi():
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        _why_alone = ("mpi4py is not installed, so this process cannot join the MPI job "
                      "(pip install 'xpnn[mpi]')")
        return None
    if not MPI.Is_initialized():  # mpi4py was imported with rc.initialize = False
        MPI.Init_thread()
        atexit.register(lambda: MPI.Is_finalized() or MPI.Finalize())
    _world = Communicator(MPI.COMM_WORLD)
    if _world.size == 1:
        _why_alone = "the MPI job has a single process"
    return _world


def rank() -> int:
    """This process's rank in the MPI job (0 without one)."""
    comm = world()
    return comm.rank if comm is not None else 0


def size() -> int:
    """The number of processes in the MPI job (1 without one)."""
    comm = world()
    return comm.size if comm is not None else 1


def is_main() -> bool:
    """Whether this is rank 0, the process that prints and writes files (True without a
    job)."""
    return rank() == 0


def local_rank() -> int:
    """This process's rank among the job's processes on its machine, from the launcher's
    environment (0 when it says nothing): the GPU to use on a multi-GPU box, as in
    ``device=f"cuda:{xpnn.distributed.local_rank()}"``."""
    for name in LOCAL_RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def barrier() -> None:
    """Wait until every process of the job gets here (nothing without a job)."""
    comm = world()
    if comm is not None:
        comm.barrier()


def describe() -> str:
    """The MPI library, its version, mpi4py's version and the job's size, in one line (for
    ``python -m xpnn info``). In a process that no launcher started, the MPI library is
    loaded but not initialised."""
    try:
        import mpi4py
    except ImportError:
        return "not available: mpi4py is not installed (pip install 'xpnn[mpi]')"
    if "mpi4py.MPI" not in sys.modules and not launched_by_mpi():
        saved = mpi4py.rc.initialize
        mpi4py.rc.initialize = False
        try:
            from mpi4py import MPI
        finally:
            mpi4py.rc.initialize = saved
    else:
        from mpi4py import MPI
    vendor, version = MPI.get_vendor()
    library = f"{vendor} {'.'.join(map(str, version))}"
    standard = ".".join(map(str, MPI.Get_version()))
    comm = world()
    job = (f"world size {comm.size}, this is rank {comm.rank}" if comm is not None
           else f"world size 1: {_why_alone}")
    return f"{library} (MPI {standard}, mpi4py {mpi4py.__version__}); {job}"


def active() -> DataParallel | None:
    """The data-parallel group of the ``fit`` running now, or None (a synchronized
    BatchNorm reduces its statistics over it)."""
    return _active


def replicas(enabled: bool, backend: Backend) -> Replicas:
    """What ``fit``/``evaluate`` train with: a :class:`DataParallel` group over the MPI job
    when ``enabled`` and the job has several processes, else the single process (with a
    one-line notice on stderr, once per process, when ``enabled``)."""
    if not enabled:
        return LOCAL
    comm = world()
    if comm is None or comm.size == 1:
        global _noticed
        if not _noticed:
            _noticed = True
            print(f"xpnn: distributed=True does nothing here: {_why_alone}; training in "
                  "this process alone", file=sys.stderr, flush=True)
        return LOCAL
    return DataParallel.for_backend(comm, backend)


def agreed(error: BaseException) -> BaseException:
    """Mark ``error`` as raised on every rank together (from values all ranks share), so a
    distributed section re-raises it instead of aborting the job; returns it."""
    setattr(error, AGREED, True)
    return error


def _install_excepthook() -> None:
    """Make an uncaught exception abort the whole MPI job (after the usual traceback), so
    that the other ranks do not wait for this one forever. Installed when xpnn is imported
    in a process an MPI launcher started; it joins the job (initialises MPI) only if it has
    to abort."""
    previous = sys.excepthook

    def abort_on_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        previous(kind, value, tb)
        comm = world()
        if comm is not None and comm.size > 1:
            print(f"xpnn: uncaught {kind.__name__} on rank {comm.rank} of {comm.size}: "
                  "aborting the MPI job", file=sys.stderr, flush=True)
            comm.abort(1)

    sys.excepthook = abort_on_uncaught


if launched_by_mpi():
    _install_excepthook()


# == MPI ======================================================================================

class Communicator:
    """The MPI operations xpnn uses, over an mpi4py communicator (``MPI.COMM_WORLD``).

    Arrays passed here are NumPy arrays in host memory, C-contiguous; objects are pickled.
    """

    def __init__(self, comm: Any) -> None:
        from mpi4py import MPI

        self._mpi = MPI
        #: The mpi4py communicator.
        self.comm = comm
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()

    def allreduce_(self, host: np.ndarray) -> np.ndarray:
        """Replace ``host`` by its sum over the ranks (in place) and return it."""
        self.comm.Allreduce(self._mpi.IN_PLACE, host, op=self._mpi.SUM)
        return host

    def broadcast(self, obj: T, root: int = 0) -> T:
        """Rank ``root``'s ``obj`` on every rank."""
        return self.comm.bcast(obj, root=root)

    def gather(self, obj: T, root: int = 0) -> list[T] | None:
        """Every rank's ``obj`` in rank order on ``root``; None elsewhere."""
        return self.comm.gather(obj, root=root)

    def allgather(self, obj: T) -> list[T]:
        """Every rank's ``obj`` in rank order, on every rank."""
        return self.comm.allgather(obj)

    def barrier(self) -> None:
        """Wait for every rank."""
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every process of the job now (``MPI_Abort``) with exit status ``code``."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)

    def shared_sum(self, count: int, dtype: np.dtype) -> SharedMemorySum | None:
        """A :class:`SharedMemorySum` of ``count`` numbers of ``dtype`` over the ranks, or
        None where it cannot be used (then sum with :meth:`allreduce_`). Collective."""
        return SharedMemorySum.create(self, count, dtype)


#: Shared-memory sums are used when the window needs at most this share of the free space
#: of /dev/shm (where MPI places shared memory on Linux).
SHARED_MEMORY_SHARE = 0.5


class SharedMemorySum:
    """Sums of one buffer of ``count`` numbers over the ranks through an MPI shared-memory
    window on each machine, instead of ``Allreduce``.

    The window of a machine with L ranks holds L slots and a result, each ``count`` numbers.
    Rank l writes its numbers into its slot (:attr:`mine`; the gradient buffer *is* that
    slot, so packing the gradients is the only copy), then :meth:`sum`: after a barrier,
    rank l adds up the l-th L-th of every slot into the result, in slot order; with several
    machines, the ranks with local rank l sum their part across machines with one
    ``Allreduce`` (each carries 1/L of the buffer: a hierarchical sum); after a second
    barrier every rank reads the whole result (:attr:`result`; the summed gradients are
    views into it). Each number is added once, so every rank reads the same bits.

    Why: the MPICH wheel's ``Allreduce`` of a 2.7 MB buffer between two processes of one
    machine took 2.5–3.5 ms here (it copies through small shared-memory cells); this reads
    each slot once and writes the result once, about 0.3 ms (``benchmarks/README.md``).
    The result may be read until the next :meth:`sum`'s first barrier, and a slot written
    again after the previous :meth:`sum` returned.

    :meth:`create` returns None (``Allreduce`` is used instead) when ``XPNN_MPI_SHM`` is
    ``0``, when the machines have different numbers of ranks, when the window would take
    more than half of the free space of /dev/shm, or when MPI refuses the window.
    ``XPNN_MPI_RANKS_PER_NODE=k`` treats each k consecutive ranks as one machine (how the
    tests exercise the sum across machines on one).
    """

    def __init__(self, comm: Communicator, node: Any, cross: Any, window: Any,
                 count: int, dtype: np.dtype) -> None:
        self._mpi = comm._mpi
        self.node, self.cross, self.window = node, cross, window
        local, ranks = node.Get_rank(), node.Get_size()
        memory, _ = window.Shared_query(0)
        flat = np.frombuffer(memory, dtype=dtype, count=(ranks + 1) * count)
        self.slots = flat[:ranks * count].reshape(ranks, count)
        #: This rank's slot: write the numbers to sum here.
        self.mine = self.slots[local]
        #: The sums, after :meth:`sum`.
        self.result = flat[ranks * count:]
        base, extra = divmod(count, ranks)
        start = local * base + min(local, extra)
        self.part = slice(start, start + base + (local < extra))

    @classmethod
    def create(cls, comm: Communicator, count: int, dtype: np.dtype
               ) -> SharedMemorySum | None:
        """The sum for ``comm``'s ranks, or None on every rank where it cannot be used
        (see the class docstring). Collective."""
        MPI = comm._mpi
        dtype = np.dtype(dtype)
        per_node = os.environ.get("XPNN_MPI_RANKS_PER_NODE", "")
        if per_node.isdigit() and int(per_node) > 0:  # pretend machines of k ranks (tests)
            node = comm.comm.Split(comm.rank // int(per_node), comm.rank)
        else:
            node = comm.comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)
        ranks = node.Get_size()
        nbytes = (ranks + 1) * count * dtype.itemsize
        usable = os.environ.get("XPNN_MPI_SHM", "1") != "0" and _shared_memory_fits(nbytes)
        layout = comm.allgather((ranks, usable))
        if len({size for size, _ in layout}) > 1 or not all(ok for _, ok in layout):
            node.Free()
            return None
        cross = comm.comm.Split(node.Get_rank(), comm.rank)
        try:
            window = MPI.Win.Allocate_shared(nbytes if node.Get_rank() == 0 else 0,
                                             dtype.itemsize, comm=node)
        except MPI.Exception:  # every rank of the machine gets the error
            node.Free()
            cross.Free()
            return None
        window.Lock_all(MPI.MODE_NOCHECK)
        return cls(comm, node, cross, window, count, dtype)

    def _fence(self) -> None:
        self.window.Sync()
        self.node.Barrier()
        self.window.Sync()

    def sum(self) -> np.ndarray:
        """Σ over every rank's :attr:`mine`, into :attr:`result` (returned). Collective."""
        self._fence()
        part = self.result[self.part]
        np.copyto(part, self.slots[0, self.part])
        for slot in self.slots[1:]:
            np.add(part, slot[self.part], out=part)
        if self.cross.Get_size() > 1:
            self.cross.Allreduce(self._mpi.IN_PLACE, part, op=self._mpi.SUM)
        self._fence()
        return self.result

    def free(self) -> None:
        """Release the window and the communicators. Collective."""
        self.window.Unlock_all()
        self.window.Free()
        self.node.Free()
        self.cross.Free()


def _shared_memory_fits(nbytes: int) -> bool:
    """Whether ``nbytes`` of shared memory are at most ``SHARED_MEMORY_SHARE`` of what
    /dev/shm has free (True where there is no /dev/shm to ask)."""
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return True
    return nbytes <= SHARED_MEMORY_SHARE * stat.f_bavail * stat.f_frsize


# == one process, and N ======================================================================

class Replicas:
    """The processes that train one model, as ``fit`` and ``evaluate`` see them: here a
    single process, for which every operation is the identity or does nothing. The training
    loop calls the same methods either way; :class:`DataParallel` is the MPI group."""

    rank = 0
    size = 1
    is_main = True

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The context of a distributed section (nothing here)."""
        yield

    def agree_seed(self, seed: int | None) -> int | None:
        """The batch-order seed every rank uses."""
        return seed

    def check_same(self, values: dict[str, Any]) -> None:
        """Check that every rank has the same ``values`` (one process always has)."""

    def on_main(self, task: Callable[[], T]) -> T:
        """``task()`` run on rank 0 only; its result (or exception) on every rank."""
        return task()

    def start(self, model: Any, position: TrainingPosition, resumed: bool) -> None:
        """Make every rank's model rank 0's before training (nothing to do here)."""

    def shard(self, indices: np.ndarray) -> np.ndarray:
        """This rank's rows of a global batch (all of them here)."""
        return indices

    def reduce_gradients(self, params: Sequence[Parameter]) -> None:
        """Sum the parameter gradients over the ranks (nothing to do here)."""

    def reduce_accumulators(self, accumulators: Sequence[Any]) -> None:
        """Sum each running mean's (total, count) over the ranks (nothing to do here)."""

    def batch_loss(self, loss: Array | None, count: int) -> float:
        """The loss of a whole global batch, from this rank's mean over its ``count``
        rows."""
        return float(loss)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any rank."""
        return flag

    def average_statistics(self, model: Any) -> None:
        """Average the running statistics of per-replica BatchNorm layers over the ranks
        (nothing to do here)."""

    def checkpoint_position(self, model: Any, position: TrainingPosition
                            ) -> TrainingPosition | None:
        """The training position a checkpoint records (None on ranks that do not write)."""
        return position

    def agreed(self, error: BaseException) -> BaseException:
        """``error``, marked as raised by every rank together."""
        return error


#: The single process.
LOCAL = Replicas()


class DataParallel(Replicas):
    """One rank's side of data-parallel training over an MPI communicator (see the module
    docstring for the semantics). ``fit`` calls it at a few points: :meth:`running` around
    the whole call, :meth:`agree_seed`, :meth:`check_same`, :meth:`on_main` and
    :meth:`start` before the first batch, :meth:`shard` and :meth:`reduce_gradients` in
    every step, :meth:`any` after the batch and epoch hooks, :meth:`reduce_accumulators` and
    :meth:`average_statistics` at the end of an epoch, and the model calls
    :meth:`checkpoint_position` when it saves a checkpoint.

    ``backend`` is the models' device: NumPy arrays are reduced in place by MPI, other
    arrays through the backend's device collectives (NCCL on CuPy) where it has them, else
    through a host copy.
    """

    _groups: ClassVar[dict[tuple[int, int], DataParallel]] = {}

    def __init__(self, comm: Any, backend: Backend) -> None:
        self.comm = comm
        self.backend = backend
        self.rank, self.size = comm.rank, comm.size
        self.is_main = self.rank == 0
        #: The number of samples in the global batch being trained (synchronized
        #: BatchNorm layers read it: their statistics are over all of them).
        self.global_batch = 0
        self.device_collectives = (None if backend.host_memory
                                   else backend.device_collectives(comm))
        self._buffer: _GradientBuffer | None = None

    @classmethod
    def for_backend(cls, comm: Communicator, backend: Backend) -> DataParallel:
        """The group of ``comm`` for models on ``backend``, created once per process (the
        device collectives and the gradient buffer are reused from one ``fit`` to the
        next)."""
        key = (id(comm), id(backend))
        group = cls._groups.get(key)
        if group is None:
            group = cls._groups[key] = cls(comm, backend)
        return group

    # -- the section ------------------------------------------------------------------------
    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Make this group the active one (for synchronized BatchNorm) and turn an exception
        that not every rank raised into an abort of the whole job, after printing this
        rank's traceback: the other ranks would otherwise wait for it forever."""
        global _active
        previous, _active = _active, self
        try:
            yield
        except BaseException as error:
            if getattr(error, AGREED, False):
                raise
            lines = traceback.format_exception(type(error), error, error.__traceback__)
            print(f"xpnn: rank {self.rank} of {self.size} failed; aborting the MPI job:\n"
                  + "".join(lines), file=sys.stderr, end="", flush=True)
            code = error.code if isinstance(error, SystemExit) else 1
            self.comm.abort(code if isinstance(code, int) and code else 1)
            raise  # pragma: no cover - Abort does not return
        finally:
            _active = previous

    def agreed(self, error: BaseException) -> BaseException:
        """``error``, marked as raised by every rank together."""
        return agreed(error)

    # -- before training --------------------------------------------------------------------
    def agree_seed(self, seed: int | None) -> int:
        """Rank 0's seed (fresh entropy drawn on rank 0 when it is None), on every rank."""
        if self.is_main and seed is None:
            seed = int(np.random.SeedSequence().entropy)
        return self.comm.broadcast(seed if self.is_main else None)

    def check_same(self, values: dict[str, Any]) -> None:
        """Raise ValueError on every rank unless all ranks have the same ``values`` (names
        and values; one collective)."""
        every = self.comm.allgather(values)
        differ = [name for name in values if any(mine[name] != values[name] for mine in every)]
        if differ:
            raise self.agreed(ValueError(
                "the ranks of a distributed fit need the same data and callbacks, but these "
                "differ: " + "; ".join(
                    f"{name}: " + ", ".join(f"rank {rank}: {mine[name]}"
                                            for rank, mine in enumerate(every))
                    for name in differ)))

    def on_main(self, task: Callable[[], T]) -> T:
        """``task()`` run on rank 0 only; its result is sent to every rank, and an exception
        it raises is raised on every rank (rank 0's own object, with its traceback, there;
        a copy elsewhere)."""
        outcome: tuple[bool, Any] = (True, None)
        if self.is_main:
            try:
                outcome = (True, task())
            except Exception as error:
                self.comm.broadcast((False, _portable(error)))
                raise self.agreed(error) from None
        ok, value = self.comm.broadcast(outcome if self.is_main else None)
        if not ok:
            raise self.agreed(value)
        return outcome[1] if self.is_main else value

    def start(self, model: Any, position: TrainingPosition, resumed: bool) -> None:
        """Give every rank rank 0's parameters and optimizer state, and each rank its own
        random streams (restored from ``position`` when a checkpoint saved them, or after a
        resume ``position.accumulators``: rank 0 keeps the running sums of a half-done
        epoch, the other ranks start from zero)."""
        self._broadcast_model(model)
        saved = position.rank_generators if resumed else []
        self._seed_generators(model, saved[self.rank - 1] if 0 < self.rank <= len(saved)
                              else None)
        if not self.is_main:
            position.accumulators = [(0.0, 0) for _ in position.accumulators]

    def _broadcast_model(self, model: Any) -> None:
        params = model.parameters()
        optimizer = model.optimizer
        payload = None
        if self.is_main:
            state = None
            if optimizer is not None and optimizer.backend is not None:
                index = {param.name: i for i, param in enumerate(params)}
                state = optimizer.state_dict()
                state["state"] = {index[name]: entry for name, entry in state["state"].items()
                                  if name in index}
            payload = (model.get_weights(), state)
        weights, state = self.comm.broadcast(payload)
        if self.is_main:
            return
        model.set_weights(weights)
        if state is not None:
            state["state"] = {params[i].name: entry for i, entry in state["state"].items()}
            optimizer.load_state_dict(state)

    def _seed_generators(self, model: Any, saved: list[Any] | None) -> None:
        """Rank r > 0 draws from its own generator, seeded by (the layer's seed, r) and
        restored from ``saved`` (its positions in a checkpoint) when there are any; rank 0
        keeps the layer's generator. A rank keeps its streams from one ``fit`` to the
        next."""
        base = self.comm.broadcast(int(np.random.SeedSequence().entropy)
                                   if self.is_main else None)
        if self.rank == 0:
            return
        marker = (self.rank, self.size)
        for index, layer in enumerate(model.layers):
            if layer.generator is None:
                continue
            state = saved[index] if saved is not None and index < len(saved) else None
            if state is None and getattr(layer.generator, "xpnn_replica", None) == marker:
                continue
            layer_seed = getattr(layer, "generator_seed", None)
            seed = np.random.SeedSequence([base if layer_seed is None else layer_seed,
                                           self.rank]).generate_state(1)[0]
            layer.generator = layer.backend.generator(int(seed))
            layer.generator.xpnn_replica = marker
            if state is not None:
                layer.generator.set_state(state)

    # -- every step ---------------------------------------------------------------------------
    def shard(self, indices: np.ndarray) -> np.ndarray:
        """Rank r's contiguous share of a global batch: ⌊B/N⌋ rows, one more for the first
        B mod N ranks (possibly none). Notes B as :attr:`global_batch`."""
        count = len(indices)
        self.global_batch = count
        base, extra = divmod(count, self.size)
        start = self.rank * base + min(self.rank, extra)
        return indices[start:start + base + (self.rank < extra)]

    def reduce_gradients(self, params: Sequence[Parameter]) -> None:
        """Replace every parameter's gradient by its sum over the ranks: one sum of one flat
        buffer (through a :class:`SharedMemorySum` for NumPy arrays where it can be used,
        else ``Allreduce``; a parameter without a gradient on a rank counts as zeros there
        and stays without one only if no rank has one)."""
        buffer = self._buffer
        if buffer is None or not buffer.fits(params):
            if buffer is not None:
                buffer.free()
            shared = getattr(self.comm, "shared_sum", None)
            buffer = self._buffer = _GradientBuffer(params, self.backend, shared)
        buffer.reduce(params, self.allreduce)

    def allreduce(self, array: Array) -> Array:
        """The sum over the ranks of a device array (possibly computed in place)."""
        if self.backend.host_memory:
            host = np.ascontiguousarray(array)
            return self.comm.allreduce_(host)
        if self.device_collectives is not None:
            return self.device_collectives.allreduce(array)
        host = self.comm.allreduce_(self.backend.to_host(array))
        return self.backend.asarray(host)

    def batch_loss(self, loss: Array | None, count: int) -> float:
        """The global batch's mean loss: Σ_r m_r L_r / Σ_r m_r."""
        sums = np.array([0.0 if not count else float(loss) * count, float(count)])
        self.comm.allreduce_(sums)
        return float(sums[0] / sums[1]) if sums[1] else float("nan")

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any rank (a collective: every rank must ask)."""
        return bool(self.comm.allreduce_(np.array([1.0 if flag else 0.0]))[0] > 0)

    # -- epochs and checkpoints ---------------------------------------------------------------
    def reduce_accumulators(self, accumulators: Sequence[Any]) -> None:
        """Set each running mean's (total, count) to its sum over the ranks (what the
        single process would hold), so reading it gives the same value on every rank."""
        for accumulator, state in zip(accumulators, self._summed_states(accumulators),
                                      strict=True):
            accumulator.set_state(state)

    def _summed_states(self, accumulators: Sequence[Any]) -> list[tuple[float, int]]:
        states = np.array([value for accumulator in accumulators
                           for value in accumulator.state()], dtype=np.float64)
        self.comm.allreduce_(states)
        return [(float(states[2 * i]), round(states[2 * i + 1]))
                for i in range(len(accumulators))]

    def average_statistics(self, model: Any) -> None:
        """Replace the running statistics of per-replica BatchNorm layers (the
        non-trainable parameters of trainable layers that do not reduce over the ranks
        themselves) by their mean over the ranks."""
        params = [param for layer in model.layers
                  if layer.trainable and not layer.collective
                  for param in layer.parameters() if not param.trainable]
        if not params:
            return
        hosts = [self.backend.to_host(param.value) for param in params]
        flat = np.concatenate([host.ravel() for host in hosts])
        self.comm.allreduce_(flat)
        flat /= self.size
        start = 0
        for param, host in zip(params, hosts, strict=True):
            param.value = self.backend.to_device(
                flat[start:start + host.size].reshape(host.shape), model.dtype)
            start += host.size

    def checkpoint_position(self, model: Any, position: TrainingPosition
                            ) -> TrainingPosition | None:
        """The position rank 0 writes into a checkpoint: the epoch's running sums over all
        ranks and every other rank's generator positions (a collective: every rank calls
        it; the running statistics are averaged first). None on ranks other than 0."""
        self.average_statistics(model)
        sums = (self._summed_states(position.live_accumulators) if position.batch
                else [])
        states = [None if layer.generator is None else layer.generator.get_state()
                  for layer in model.layers]
        gathered = self.comm.gather(states)
        if not self.is_main:
            return None
        others = gathered[1:]
        keep = any(state is not None for states in others for state in states)
        return dataclasses.replace(position, accumulators=sums, live_accumulators=[],
                                   rank_generators=others if keep else [])


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling, else a RuntimeError with its type and message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error} (raised on rank 0)")
    return error


class _GradientBuffer:
    """One flat buffer for the gradients of a list of parameters, in their order, followed
    by one presence flag per parameter (1 where the rank has a gradient): what one sum over
    the ranks reduces. On a device whose arrays live in host memory (NumPy) the buffer is
    allocated once — as this rank's slot of a :class:`SharedMemorySum` where ``shared``
    (a communicator's ``shared_sum``) offers one, else as a NumPy array that ``Allreduce``
    sums in place — and the parameters' summed gradients are views into the sums;
    elsewhere it is assembled on the device each step."""

    def __init__(self, params: Sequence[Parameter], backend: Backend,
                 shared: Callable[[int, Any], SharedMemorySum | None] | None = None) -> None:
        self.backend = backend
        self.ids = [id(param) for param in params]
        self.shapes = [param.shape for param in params]
        self.sizes = [param.size for param in params]
        self.total = sum(self.sizes)
        self.dtype = params[0].value.dtype if params else None
        self.host = None
        self.shared = None
        if backend.host_memory and params:
            count = self.total + len(params)
            self.shared = shared(count, self.dtype) if shared is not None else None
            self.host = (self.shared.mine if self.shared is not None
                         else np.empty(count, dtype=self.dtype))
            self.views = self._views(self.host)
            self.summed = (self._views(self.shared.result) if self.shared is not None
                           else self.views)

    def free(self) -> None:
        """Release the shared memory (collective, as creating it was)."""
        if self.shared is not None:
            self.shared.free()
            self.shared = None

    def fits(self, params: Sequence[Parameter]) -> bool:
        """Whether this buffer was laid out for exactly ``params``."""
        return [id(param) for param in params] == self.ids

    def _views(self, flat: Array) -> list[Array]:
        xp, views, start = self.backend.xp, [], 0
        for shape, count in zip(self.shapes, self.sizes, strict=True):
            views.append(xp.reshape(flat[start:start + count], shape))
            start += count
        return views

    def reduce(self, params: Sequence[Parameter], allreduce: Callable[[Array], Array]) -> None:
        """Sum the gradients of ``params`` over the ranks with ``allreduce``."""
        if not params:
            return
        present = [param.grad is not None for param in params]
        if self.host is not None:
            flags = self.host[self.total:]
            for index, (param, view) in enumerate(zip(params, self.views, strict=True)):
                if present[index]:
                    np.copyto(view, param.grad)
                else:
                    view.fill(0)
            flags[:] = present
            flat = self.shared.sum() if self.shared is not None else allreduce(self.host)
            views = self.summed
        else:
            xp, native = self.backend.xp, self.backend.native_device
            parts = [xp.reshape(param.grad, (-1,)) if param.grad is not None
                     else xp.zeros((count,), dtype=self.dtype, device=native)
                     for param, count in zip(params, self.sizes, strict=True)]
            parts.append(xp.asarray([1.0 if has else 0.0 for has in present], dtype=self.dtype,
                                    device=native))
            flat = allreduce(xp.concat(parts))
            views = self._views(flat)
        if all(present):  # then every rank's flag sum is positive: no read needed
            received = present
        else:
            received = [bool(flag > 0) for flag in
                        self.backend.to_host(flat[self.total:]).tolist()]
        for param, view, has in zip(params, views, received, strict=True):
            param.grad = view if has else None
