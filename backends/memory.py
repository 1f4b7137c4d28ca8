"""The C allocator's settings for training on the CPU (glibc only).

A training step allocates the same large arrays every step (activations, window matrices,
gradients, megabytes each) and frees them when the step ends. glibc's malloc serves
allocations of more than ``M_MMAP_THRESHOLD`` bytes with fresh ``mmap`` pages and returns the
free top of its heap to the system once it exceeds ``M_TRIM_THRESHOLD``; both thresholds
adapt upwards, but the top of the heap still goes back to the system whenever one step's
arrays are all freed together. Every step then faults its memory back in, page by page, and
zeroes it: on this project's 2-core CPU the LeNet benchmark epoch took 1.4× as long, with
285,000 minor page faults where 18,000 remain with the settings below (3 epochs; see
``benchmarks/README.md``).

:func:`keep_freed_memory` raises both thresholds once per process, when the NumPy backend is
created: arrays of up to 32 MiB (glibc's maximum for the first) come from the heap, and up
to 256 MiB of freed heap stays with the process for the next step. Set the environment
variable ``XPNN_MALLOC_TUNING=0`` to leave the allocator as it is.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: mallopt parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: The values set: glibc's largest mmap threshold on 64-bit systems, and 256 MiB.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20

_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module docstring), once; returns
    whether the settings are in effect (False off glibc, or with XPNN_MALLOC_TUNING=0)."""
    global _done
    if _done:
        return True
    if os.environ.get("XPNN_MALLOC_TUNING", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
