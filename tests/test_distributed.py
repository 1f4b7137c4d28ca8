"""Data-parallel training (``xpnn.distributed``).

Under ``mpiexec`` (marker ``mpi``; skipped with the reason where mpi4py or ``mpiexec`` is
missing): two ranks (and four, as two pretend machines) train in float64 as one process
does, within 1e-12, with identical parameters and Histories on every rank, the gradients
summed through shared memory or MPI's Allreduce (plain Dense/Tanh/Momentum at global batch
64 with an uneven last batch, an odd batch size, synchronized BatchNorm and BatchNorm2D, a
rank with an empty share, and on the strict device, whose arrays are staged through the
host); a rank that raises ends the job quickly; a job killed in the
middle of an epoch and resumed with two ranks ends where the uninterrupted job does, bit
for bit.

Without MPI: ``distributed=True`` is a no-op with a notice; the sharding, the gradient
buffer (also staged through the host for a device MPI cannot read, with a stand-in
communicator), synchronized BatchNorm's formulas and the NCCL collectives (with stand-ins
for CuPy and NCCL) are checked in this process.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from xpnn.backends import nccl as nccl_backend

import xpnn
from xpnn import distributed
from xpnn.history import TrainingPosition
from xpnn.layers.base import BuildContext

from . import mpi_cases
from .paths import IN_REPOSITORY, REPOSITORY, requires_repository

CASES = Path(mpi_cases.__file__)


# -- a stand-in communicator -------------------------------------------------------------------

class FakeComm:
    """``size`` ranks seen from rank ``rank``, whose peers hold exactly what it holds: a sum
    over the ranks is ``size`` times the local array. Only host NumPy arrays may reach it,
    as with a real MPI that cannot read device memory."""

    def __init__(self, size=2, rank=0):
        self.size, self.rank = size, rank
        self.received = []

    def allreduce_(self, host):
        assert type(host) is np.ndarray, f"MPI got a {type(host)}"
        assert host.flags.c_contiguous
        self.received.append(host.copy())
        host *= self.size
        return host

    def broadcast(self, obj, root=0):
        return obj

    def allgather(self, obj):
        return [obj] * self.size

    def gather(self, obj, root=0):
        return [obj] * self.size if self.rank == root else None

    def barrier(self):
        pass

    def abort(self, code=1):
        raise AssertionError(f"abort({code})")


# -- without MPI -------------------------------------------------------------------------------

def test_without_a_job_distributed_is_a_no_op_with_a_one_line_notice(monkeypatch, capsys):
    monkeypatch.setattr(distributed, "_noticed", False)
    assert (distributed.rank(), distributed.size(), distributed.is_main()) == (0, 1, True)
    distributed.barrier()
    x, y = mpi_cases.vectors(100)
    plain, spread = mpi_cases.dense_tanh(), mpi_cases.dense_tanh()
    plain.fit(x, y, epochs=2, batch_size=32, seed=0, verbose=0)
    spread.fit(x, y, epochs=2, batch_size=32, seed=0, verbose=0, distributed=True)
    spread.evaluate(x, y, distributed=True)
    for left, right in zip(plain.get_weights(), spread.get_weights(), strict=True):
        np.testing.assert_array_equal(left, right)
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and "distributed=True does nothing here" in notice[0]
    assert "mpiexec" in notice[0]


def test_local_rank_comes_from_the_launcher(monkeypatch):
    for name in distributed.LOCAL_RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.local_rank() == 0
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "3")
    assert distributed.local_rank() == 3


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_each_rank_takes_a_contiguous_share_of_every_batch(size):
    for count in range(0, 23):
        indices = np.arange(100, 100 + count)
        shares = [distributed.DataParallel(FakeComm(size, rank), xpnn.get_backend("cpu"))
                  .shard(indices) for rank in range(size)]
        np.testing.assert_array_equal(np.concatenate(shares), indices)
        sizes = [len(share) for share in shares]
        assert sizes == sorted(sizes, reverse=True) and sizes[0] - sizes[-1] <= 1


def _params(lane, rng):
    backend = lane.backend
    shapes = [(3, 4), (4,), (2, 2, 2)]
    params = [xpnn.Parameter(f"p{i}", backend.asarray(rng.standard_normal(shape), "float64"))
              for i, shape in enumerate(shapes)]
    grads = [rng.standard_normal(shape) for shape in shapes]
    for param, grad in zip(params, grads, strict=True):
        param.grad = backend.asarray(grad, "float64")
    return params, grads


def test_gradients_are_summed_in_one_flat_buffer_staged_through_the_host(lane, monkeypatch):
    """On NumPy MPI sums the buffer in place; on a device it cannot read (strict, CuPy
    without NCCL) the buffer goes through one host copy each way. A presence flag per
    parameter follows the gradients: a parameter without a gradient here counts as zeros
    and gets the other ranks' sum if any rank has one, else stays without one."""
    monkeypatch.setenv("XPNN_NCCL", "0")
    comm = FakeComm(size=3)
    group = distributed.DataParallel(comm, lane.backend)
    rng = np.random.default_rng(0)
    params, grads = _params(lane, rng)
    params[1].grad = None
    group.reduce_gradients(params)
    assert len(comm.received) == 1  # one sum per step
    sent = comm.received[0]
    assert sent.size == sum(param.size for param in params) + len(params)
    np.testing.assert_array_equal(sent[-3:], [1.0, 0.0, 1.0])
    assert params[1].grad is None  # no rank had one
    for param, grad in zip(params, grads, strict=True):
        if param.grad is not None:
            lane.assert_close(param.grad, 3 * grad, "float64", what=param.name)

    class Others(FakeComm):  # the two other ranks have a gradient of ones for p1
        def allreduce_(self, host):
            super().allreduce_(host)
            host[12:16] += 2.0
            host[-3:] = [3.0, 2.0, 3.0]
            return host

    group = distributed.DataParallel(Others(size=3), lane.backend)
    params, grads = _params(lane, rng)
    params[1].grad = None
    group.reduce_gradients(params)
    lane.assert_close(params[1].grad, np.full(4, 2.0), "float64", what="p1")
    lane.assert_close(params[0].grad, 3 * grads[0], "float64", what="p0")


def test_the_host_buffer_is_reused_from_step_to_step():
    backend = xpnn.get_backend("cpu")
    group = distributed.DataParallel(FakeComm(size=2), backend)
    rng = np.random.default_rng(1)

    class CpuLane:
        pass
    lane = CpuLane()
    lane.backend = backend
    params, grads = _params(lane, rng)
    group.reduce_gradients(params)
    first = group._buffer.host
    for param, grad in zip(params, grads, strict=True):
        assert np.shares_memory(param.grad, first)
        np.testing.assert_array_equal(param.grad, 2 * grad)
    for param in params:
        param.grad = np.ones(param.shape)
    group.reduce_gradients(params)
    assert group._buffer.host is first
    assert all(np.array_equal(param.grad, np.full(param.shape, 2.0)) for param in params)


def _batchnorm_pair(lane, cls, shape, rng):
    """A BatchNorm and a synchronized one with the same (random) running mean: the shift of
    the synchronized sums."""
    built = []
    for synchronized in (False, True):
        layer = cls(synchronized=synchronized)
        layer.build(shape[1:], BuildContext(lane.backend, "float64", np.random.default_rng(0)))
        built.append(layer)
    mean = rng.standard_normal(built[0].running_mean.shape)
    for layer in built:
        layer.running_mean.value = lane.asarray(mean, "float64")
    return built


@pytest.mark.parametrize("cls, shape", [(xpnn.BatchNorm, (12, 5)),
                                        (xpnn.BatchNorm, (4, 3, 5)),
                                        (xpnn.BatchNorm2D, (4, 3, 5, 5))])
def test_synchronized_batchnorm_over_one_rank_equals_batchnorm(lane, cls, shape, monkeypatch):
    """The sum-over-ranks formulas (shifted sums forward, two sums backward) with a group of
    one rank give BatchNorm's results; outside a distributed fit the layer is BatchNorm."""
    monkeypatch.setenv("XPNN_NCCL", "0")
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape) * 3.0 + 1.5
    g = rng.standard_normal(shape)
    plain, synced = _batchnorm_pair(lane, cls, shape, rng)
    assert synced.collective and not plain.collective
    outside, ctx = synced.apply(lane.asarray(x, "float64"), training=True)
    assert ctx.group is None
    np.testing.assert_array_equal(lane.to_host(outside), lane.to_host(
        plain.apply(lane.asarray(x, "float64"), training=True)[0]))

    group = distributed.DataParallel(FakeComm(size=1), lane.backend)
    group.global_batch = shape[0]
    plain, synced = _batchnorm_pair(lane, cls, shape, rng)
    y_plain, ctx_plain = plain.apply(lane.asarray(x, "float64"), training=True)
    with group.running():
        y_sync, ctx_sync = synced.apply(lane.asarray(x, "float64"), training=True)
        assert ctx_sync.group is group
        dx_sync = synced.backward(ctx_sync, lane.asarray(g, "float64"))
    dx_plain = plain.backward(ctx_plain, lane.asarray(g, "float64"))
    tolerance = {"float64": {"rtol": 1e-12, "atol": 1e-12}}
    lane.assert_close(y_sync, lane.to_host(y_plain), "float64", tolerance, "y")
    lane.assert_close(dx_sync, lane.to_host(dx_plain), "float64", tolerance, "dL/dx")
    for left, right in zip(synced.parameters(), plain.parameters(), strict=True):
        lane.assert_close(left.value, lane.to_host(right.value), "float64", tolerance,
                          left.name)
        if right.grad is not None:
            lane.assert_close(left.grad, lane.to_host(right.grad), "float64", tolerance,
                              f"dL/d {left.name}")
    assert cls(synchronized=True).get_config()["synchronized"] is True


def test_a_synchronized_batchnorm_sums_its_statistics_over_the_ranks():
    """Two identical ranks: every statistic is over twice the rows, so the same x gives
    the same normalisation, and the backward's sums are twice the local ones."""
    backend = xpnn.get_backend("cpu")
    comm = FakeComm(size=2)
    group = distributed.DataParallel(comm, backend)
    group.global_batch = 16
    layer = xpnn.BatchNorm(synchronized=True)
    layer.build((3,), BuildContext(backend, "float64",
                                                    np.random.default_rng(0)))
    x = np.random.default_rng(3).standard_normal((8, 3))
    with group.running():
        y, ctx = layer.apply(x, training=True)
        layer.backward(ctx, np.ones_like(x))
    assert [sent.shape for sent in comm.received] == [(6,), (6,)]  # 2C numbers, twice
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=0), x.var(axis=0) / (x.var(axis=0) + 1e-5),
                               rtol=1e-10)
    assert ctx.count == 16


def test_the_position_carries_every_ranks_generators_and_global_sums():
    position = TrainingPosition(1, 3, {"s": 1}, 100, 10, True, [(2.5, 30)],
                                rank_generators=[[None, {"state": 7}]])
    data = position.to_json()
    assert data["accumulators"] == [[2.5, 30]] and data["rank_generators"] == [[None,
                                                                               {"state": 7}]]
    again = TrainingPosition.from_json(data)
    assert again.rank_generators == position.rank_generators
    assert "rank_generators" not in TrainingPosition().to_json()


def test_an_exception_in_a_distributed_section_aborts_unless_every_rank_raised_it():
    group = distributed.DataParallel(FakeComm(size=2), xpnn.get_backend("cpu"))
    with pytest.raises(AssertionError, match="abort"), group.running():
        raise RuntimeError("only here")
    with pytest.raises(ValueError, match="everywhere"), group.running():
        raise group.agreed(ValueError("everywhere"))


# -- NCCL, with stand-ins for CuPy and its NCCL binding ----------------------------------------

class FakeNccl:
    NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 6, 7, 8, 0
    available = True

    def __init__(self):
        self.calls = []

    def get_unique_id(self):
        self.calls.append("get_unique_id")
        return (42,)

    def NcclCommunicator(self, size, unique_id, rank):  # noqa: N802 - CuPy's name
        fake = self

        class Communicator:
            def allReduce(self, send, receive, count, dtype, op, stream):  # noqa: N802
                fake.calls.append(("allReduce", send, receive, count, dtype, op, stream))

        self.calls.append(("NcclCommunicator", size, unique_id, rank))
        return Communicator()


class FakeCupy:
    class cuda:  # noqa: N801 - the module's name
        @staticmethod
        def get_current_stream():
            class Stream:
                ptr = 1234
            return Stream()

    @staticmethod
    def ascontiguousarray(array):
        class DeviceArray:
            def __init__(self, host):
                self.host, self.dtype, self.size = host, host.dtype, host.size

                class Data:
                    ptr = host.ctypes.data
                self.data = Data()
        return DeviceArray(np.ascontiguousarray(array))


class Device:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_nccl_is_bootstrapped_over_mpi_and_sums_in_place_on_the_stream():
    nccl = FakeNccl()
    for rank in (0, 1):
        nccl.calls.clear()
        comm = FakeComm(size=2, rank=rank)
        collectives = nccl_backend.NcclCollectives(FakeCupy, nccl, comm, Device())
        expected = ["get_unique_id"] if rank == 0 else []
        assert nccl.calls == [*expected, ("NcclCommunicator", 2, (42,) if rank == 0 else None,
                                          rank)]
    nccl.calls.clear()
    array = np.ones(5, dtype=np.float32)
    result = collectives.allreduce(array)
    (name, send, receive, count, dtype, op, stream), = nccl.calls
    assert (name, count, dtype, op, stream) == ("allReduce", 5, nccl.NCCL_FLOAT32,
                                                nccl.NCCL_SUM, 1234)
    assert send == receive == result.data.ptr  # in place
    with pytest.raises(TypeError, match="float16, float32 and float64"):
        collectives.allreduce(np.ones(3, dtype=np.int32))


def test_nccl_is_used_only_when_every_rank_can_load_it(monkeypatch):
    class HalfTheRanks(FakeComm):
        def allgather(self, obj):
            return [obj, False]

    monkeypatch.setattr(nccl_backend, "nccl_module", FakeNccl)
    assert nccl_backend.NcclCollectives.create(FakeCupy, HalfTheRanks(), Device()) is None
    assert nccl_backend.NcclCollectives.create(FakeCupy, FakeComm(), Device()) is not None
    monkeypatch.undo()
    monkeypatch.setenv("XPNN_NCCL", "0")
    assert nccl_backend.nccl_module() is None


# -- under mpiexec -n 2 ------------------------------------------------------------------------

def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None, "mpi4py is not installed (pip install 'xpnn[mpi]'; the test extra has it)"
    found = Path(sys.executable).parent / "mpiexec"
    if not found.exists():
        found = shutil.which("mpiexec")
    if not found:
        return None, "no mpiexec beside the Python executable or on PATH (the mpich wheel " \
                     "of the mpi extra brings one)"
    return str(found), None


MPIEXEC, NO_MPI = _mpiexec()


def mpi(test):
    """Marked ``mpi`` (``pytest -m mpi`` runs only these; ``-m "not mpi"`` skips them) and
    skipped with the reason where mpi4py or mpiexec is missing."""
    return pytest.mark.mpi(pytest.mark.skipif(MPIEXEC is None, reason=NO_MPI or "")(test))


def run_ranks(out, *args, ranks=2, timeout=240, program=None, env=None):
    """``mpiexec -n ranks python tests/mpi_cases.py ARGS`` (or ``program``), one BLAS thread
    per rank; returns the completed process and its wall time."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           **({"PYTHONPATH": str(REPOSITORY)} if IN_REPOSITORY else {}), **(env or {})}
    command = [MPIEXEC, "-n", str(ranks), sys.executable,
               *(program or [str(CASES), args[0], str(out), *args[1:]])]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                            cwd=out, stdin=subprocess.DEVNULL)
    return result, time.perf_counter() - start


def load_ranks(out, case, ranks=2):
    return [pickle.loads((Path(out) / f"{case}.rank{rank}.pkl").read_bytes())
            for rank in range(ranks)]


def _max_difference(left, right):
    return max(float(np.max(np.abs(a - b))) for a, b in zip(left, right, strict=True))


def _history_difference(left, right):
    assert left.keys() == right.keys()
    return max(abs(a - b) for key in left for a, b in zip(left[key], right[key], strict=True))


#: How the gradients are summed: (ranks, environment, through shared memory?). ``shared``:
#: one machine's shared-memory window (the default); ``allreduce``: MPI's Allreduce;
#: ``two_machines``: 4 ranks as 2 pretend machines of 2, shared memory on each and
#: Allreduce between them.
TRANSPORTS = {"shared": (2, {}, True), "allreduce": (2, {"XPNN_MPI_SHM": "0"}, False),
              "two_machines": (4, {"XPNN_MPI_RANKS_PER_NODE": "2"}, True)}


@pytest.fixture(scope="module", params=list(TRANSPORTS))
def equivalence(request, tmp_path_factory):
    if MPIEXEC is None:
        pytest.skip(NO_MPI)
    ranks, env, shared = TRANSPORTS[request.param]
    out = tmp_path_factory.mktemp("equivalence")
    result, _ = run_ranks(out, "equivalence", ",".join(mpi_cases.EQUIVALENCE), ranks=ranks,
                          env=env)
    assert result.returncode == 0, result.stderr
    return result, load_ranks(out, "equivalence", ranks), shared


@mpi
@pytest.mark.parametrize("name", list(mpi_cases.EQUIVALENCE))
def test_n_ranks_train_as_one_process_does(equivalence, name):
    """Weights after 3 epochs within 1e-12 of one process; identical on every rank; the
    same History, callback logs (epochs and batches, with the batch loss) and evaluation
    on every rank, within 1e-12 of one process's."""
    _, ranks, shared = equivalence
    single = mpi_cases.train(name, distributed=False)
    first = ranks[0][name]
    assert all(rank[name]["shared_memory"] is (shared and rank[name]["host_memory"])
               for rank in ranks)
    assert _max_difference(first["weights"], single["weights"]) < 1e-12
    for other in ranks[1:]:
        for left, right in zip(first["weights"], other[name]["weights"], strict=True):
            np.testing.assert_array_equal(left, right)
        assert first["history"] == other[name]["history"]
        assert first["events"] == other[name]["events"]
        assert first["evaluate"] == other[name]["evaluate"]
    assert _history_difference(first["history"], single["history"]) < 1e-12
    assert [event[:2] for event in first["events"]] == [event[:2] for event in
                                                        single["events"]]
    for mine, theirs in zip(first["events"], single["events"], strict=True):
        assert mine[2].keys() == theirs[2].keys()
        assert max(abs(mine[2][key] - theirs[2][key]) for key in mine[2]) < 1e-12
    assert max(abs(first["evaluate"][key] - single["evaluate"][key])
               for key in single["evaluate"]) < 1e-12


@mpi
def test_only_rank_0_prints_the_progress(equivalence):
    result, _, _ = equivalence
    epochs = [line for line in result.stdout.splitlines() if line.startswith("Epoch 1/")]
    assert len(epochs) == len(mpi_cases.EQUIVALENCE)


@mpi
def test_unseeded_ranks_agree_on_the_order_and_the_weights(tmp_path):
    result, _ = run_ranks(tmp_path, "unseeded")
    assert result.returncode == 0, result.stderr
    first, second = load_ranks(tmp_path, "unseeded")
    for left, right in zip(first["weights"], second["weights"], strict=True):
        np.testing.assert_array_equal(left, right)
    assert first["history"] == second["history"]


@mpi
def test_per_replica_batchnorm_and_dropout_keep_the_ranks_identical(tmp_path):
    """Per-replica statistics are averaged over the ranks, so both end with one model;
    each rank draws its own Dropout masks."""
    result, _ = run_ranks(tmp_path, "replicas")
    assert result.returncode == 0, result.stderr
    first, second = load_ranks(tmp_path, "replicas")
    for left, right in zip(first["weights"], second["weights"], strict=True):
        np.testing.assert_array_equal(left, right)
    assert first["history"] == second["history"]
    assert first["dropout_state"] != second["dropout_state"]
    assert not np.array_equal(first["first_mask"], second["first_mask"])


@mpi
def test_the_ranks_agree_on_stopping_and_on_their_callbacks(tmp_path):
    result, _ = run_ranks(tmp_path, "agreement")
    assert result.returncode == 0, result.stderr
    first, second = load_ranks(tmp_path, "agreement")
    assert first["position"] == second["position"] == (0, 3)
    for left, right in zip(first["weights"], second["weights"], strict=True):
        np.testing.assert_array_equal(left, right)
    assert first["refused"] == second["refused"]
    assert "rank 0: ['ModelCheckpoint'], rank 1: []" in first["refused"]
    assert not (tmp_path / "c.xpnn").exists()


@mpi
@pytest.mark.parametrize("where", ["inside", "outside"])
def test_a_rank_that_raises_ends_the_job_with_its_traceback(tmp_path, where):
    """Rank 1 raises in a callback in the middle of an epoch (``inside``: the other rank is
    already waiting in the next gradient sum), or before fit while rank 0 trains
    (``outside``: an uncaught exception before this process even initialised MPI). The job
    ends with a non-zero status in well under 30 s, showing rank 1's traceback."""
    result, seconds = run_ranks(tmp_path, "fault", where, timeout=60)
    assert result.returncode != 0
    assert seconds < 30, f"the job took {seconds:.1f} s to end"
    assert "injected failure on rank 1" in result.stderr
    assert "Traceback" in result.stderr
    expected = "rank 1 of 2 failed" if where == "inside" else "uncaught RuntimeError on rank 1"
    assert expected in result.stderr


@mpi
@pytest.mark.parametrize("name", ["dense", "replicas"])
def test_a_killed_job_resumed_with_two_ranks_ends_as_the_uninterrupted_one(tmp_path, name):
    """Checkpoints every 2 batches; rank 1 is SIGKILLed after batch 3 of epoch 2 (the job
    dies); 2 ranks resume from the last checkpoint (after batch 2 of that epoch: rank 1's
    Dropout position and the epoch's running sums of both ranks are in it). The final
    weights equal the uninterrupted 2-rank run's bit for bit (``dense``: and one process's
    within 1e-12)."""
    straight, _ = run_ranks(tmp_path, "resume", "straight", name)
    assert straight.returncode == 0, straight.stderr
    expected = load_ranks(tmp_path, "resume")[0]
    killed, _ = run_ranks(tmp_path, "resume", "killed", name)
    assert killed.returncode != 0
    assert (tmp_path / f"{name}.run.xpnn").exists()
    resumed, _ = run_ranks(tmp_path, "resume", "resumed", name)
    assert resumed.returncode == 0, resumed.stderr
    first, second = load_ranks(tmp_path, "resume")
    for left, right, other in zip(first["weights"], expected["weights"], second["weights"],
                                  strict=True):
        np.testing.assert_array_equal(left, right)
        np.testing.assert_array_equal(other, right)
    assert _history_difference(first["history"], expected["history"]) < 1e-12
    if name == "dense":
        model = mpi_cases.dense_tanh()
        mpi_cases.resume_fit(model, tmp_path / "single.xpnn")
        assert _max_difference(first["weights"], model.get_weights()) < 1e-12


@mpi
def test_one_rank_under_mpiexec_trains_alone_with_a_notice(tmp_path):
    result, _ = run_ranks(tmp_path, "notice", ranks=1)
    assert result.returncode == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if "does nothing here" in line]
    assert len(notices) == 1 and "single process" in notices[0]


@mpi
def test_info_names_the_mpi_library_and_the_world_size(tmp_path):
    result, _ = run_ranks(tmp_path, program=["-m", "xpnn", "info"])
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("mpi:")]
    assert len(lines) == 2
    assert all("MPICH" in line or "Open MPI" in line for line in lines)
    assert {line.rsplit("rank ", 1)[1] for line in lines} == {"0", "1"}
    assert all("world size 2" in line for line in lines)


@mpi
@requires_repository
def test_the_digits_example_trains_on_two_ranks_and_prints_once(tmp_path):
    pytest.importorskip("sklearn", reason="the digits example needs scikit-learn")
    result, _ = run_ranks(tmp_path, program=[str(REPOSITORY / "examples" / "digits_mlp.py"),
                                             "--distributed", "--epochs", "3"])
    assert result.returncode == 0, result.stderr
    accuracy = [line for line in result.stdout.splitlines() if "test accuracy" in line]
    assert len(accuracy) == 1 and "2 processes" in accuracy[0]
    assert float(accuracy[0].split()[2]) > 0.85
    assert sum(line.startswith("Epoch 3/3") for line in result.stdout.splitlines()) == 1
