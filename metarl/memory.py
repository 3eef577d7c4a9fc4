"""Keep freed tensor memory in the process (glibc only).

By default glibc serves blocks above a dynamic threshold (128 KiB to 32 MiB) with fresh ``mmap`` pages and trims
freed heap memory back to the OS. A CPU learner that allocates and frees the same 2-10 MB activation tensors
thousands of times per update then page-faults on reuse, depending on the process's allocation history.
Measured on the development machine:

- one Hessian-vector product of the 2D-navigation update, in a fresh process: 111-146 ms with glibc's defaults,
  72-73 ms with this tuning;
- `metarl perf iteration`: 1.09-1.18 s against 1.06 s.

PyTorch's CPU performance guides get the same effect from jemalloc or tcmalloc; this needs no preloaded
allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems
_TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes (an int): in practice, never trim

_applied = False


def keep_freed_memory() -> bool:
    """Serve blocks up to 32 MiB from the heap and never trim it; returns whether glibc accepted. Idempotent."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                      _TRIM_THRESHOLD))
    return _applied
