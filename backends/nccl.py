"""NCCL collectives for the CuPy backend: the data-parallel sums of ``xpnn.distributed`` on
the GPUs, without a copy through host memory.

Bootstrapped over MPI as ChainerMN's ``pure_nccl`` communicator and CuPy's
``cupyx.distributed.NCCLBackend(use_mpi=True)`` are: rank 0 draws an NCCL unique id
(``get_unique_id``), MPI broadcasts it, and every rank creates
``NcclCommunicator(N, id, rank)`` on its own GPU (the job must give each rank a different
GPU: ``device=f"cuda:{xpnn.distributed.local_rank()}"`` on a multi-GPU box). A sum is
``allReduce(buffer, buffer, count, dtype, NCCL_SUM, stream)`` in place on the current
stream, so it is ordered after the kernels that computed the gradients and before the
optimizer's, with no host synchronisation.

NCCL is used only when every rank can load it (``cupy.cuda.nccl.available``: the
``nvidia-nccl-cu12`` / ``-cu13`` wheel or a system NCCL) and ``XPNN_NCCL`` is not ``0``;
otherwise ``xpnn.distributed`` stages each array through host memory and MPI (a CUDA-aware
MPI is not assumed: the MPICH wheel has no CUDA support).
"""

from __future__ import annotations

import os
import warnings
from typing import Any


def nccl_module() -> Any | None:
    """CuPy's NCCL binding when it can be used here (and ``XPNN_NCCL`` is not ``0``), else
    None."""
    if os.environ.get("XPNN_NCCL", "1") == "0":
        return None
    try:
        with warnings.catch_warnings():  # CuPy warns when the NCCL library is missing
            warnings.simplefilter("ignore")
            from cupy.cuda import nccl
    except Exception:  # CuPy without its CUDA libraries can fail in many ways
        return None
    return nccl if getattr(nccl, "available", False) else None


class NcclCollectives:
    """In-place sums of CuPy arrays over the ranks of an MPI job, by NCCL.

    ``cupy`` and ``nccl`` are the CuPy module and its NCCL binding (passed in, so a test can
    run this class against stand-ins without a GPU); ``communicator`` an
    ``xpnn.distributed.Communicator``; ``device`` the ``cupy.cuda.Device`` of this rank.
    Creating it is collective: every rank of the communicator must do it together.
    """

    def __init__(self, cupy: Any, nccl: Any, communicator: Any, device: Any) -> None:
        self._cupy = cupy
        self._nccl = nccl
        self.device = device
        #: NCCL's dtype constant for each NumPy dtype character.
        self.dtypes = {"e": nccl.NCCL_FLOAT16, "f": nccl.NCCL_FLOAT32,
                       "d": nccl.NCCL_FLOAT64}
        unique_id = nccl.get_unique_id() if communicator.rank == 0 else None
        unique_id = communicator.broadcast(unique_id)
        with device:
            self.comm = nccl.NcclCommunicator(communicator.size, unique_id, communicator.rank)

    @classmethod
    def create(cls, cupy: Any, communicator: Any, device: Any) -> NcclCollectives | None:
        """NCCL collectives when every rank can load NCCL, else None on every rank."""
        nccl = nccl_module()
        if not all(communicator.allgather(nccl is not None)):
            return None
        return cls(cupy, nccl, communicator, device)

    def allreduce(self, array: Any) -> Any:
        """Σ over the ranks of ``array`` (a float16/32/64 CuPy array; a contiguous copy
        first if it is not contiguous), computed in place on the current stream."""
        array = self._cupy.ascontiguousarray(array)
        try:
            kind = self.dtypes[array.dtype.char]
        except KeyError:
            raise TypeError(f"NCCL sums float16, float32 and float64 arrays, not "
                            f"{array.dtype}") from None
        with self.device:
            self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, kind,
                                self._nccl.NCCL_SUM, self._cupy.cuda.get_current_stream().ptr)
        return array
