"""Process-level runtime settings for training: threads and the C allocator.

glibc serves every allocation above 32 MB with a fresh ``mmap`` and returns it on ``free``, so a
tensor of that size allocated once per step (MGCN's 7,050 × 4,096 feature-table gradient, 115 MB) is
page-faulted in again every step: ~10 ms of a 170 ms step on Baby even with transparent huge pages.
Serving large blocks from the heap and not trimming it keeps those pages mapped between steps.
The cost is that freed memory is not handed back to the OS while the process lives, which a
training process does not need (its peak is reached every step anyway); ``MMUNLEARN_MALLOC=system``
keeps glibc's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_tuned = False


def tune_allocator() -> bool:
    """Keep large freed blocks mapped (glibc only; a no-op elsewhere). Returns whether it applied."""
    global _tuned
    if _tuned:
        return True
    if os.environ.get("MMUNLEARN_MALLOC", "") == "system" or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _tuned = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
    return _tuned
