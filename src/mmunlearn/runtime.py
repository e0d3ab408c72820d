"""Process-level runtime settings for training and evaluation: the C allocator.

torch puts CPU tensors of 2 MB and more on transparent huge pages (``THP_MEM_ALLOC_ENABLE``, set in
``mmunlearn/__init__.py``), and glibc, by default, serves such blocks with a fresh ``mmap`` or trims
them off the heap top when freed. A training step allocates and frees dozens of them (LightGCN on
Baby: 6.8 MB node matrices, MGCN's 16 MB InfoNCE softmax), so every step page-faults and zeroes them
anew. Here blocks below 32 MB (glibc's largest mmap threshold) always come from the heap and the heap
is never trimmed: on Baby at 2 threads a LightGCN step went from 53 to 35 ms (same machine, back to
back, three or more runs each; a two-block microbenchmark shows the effect in only some runs, as where the
heap places torch's 2 MB-aligned blocks varies with address-space randomisation, so no unit test
asserts it). Blocks of 32 MB and more keep glibc's behaviour (mapped on allocation, returned on free):
serving those from the heap too was as fast but fragmented it — MGCN training on Clothing peaked at
3.6 GiB instead of 2.7 GiB. The one such block allocated every step, MGCN's 115–377 MB feature-table
gradient, reuses its storage instead (``models/mgcn.GradientStore``), and evaluation scores users in
16 MB blocks. The cost: memory freed below 32 MB is kept by the process until it exits.
``MMUNLEARN_MALLOC=system`` keeps glibc's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: the largest value glibc accepts for M_MMAP_THRESHOLD on 64-bit systems
_MMAP_THRESHOLD_MAX = 32 * 2 ** 20
_tuned = False


def tune_allocator() -> bool:
    """Serve blocks below 32 MB from an untrimmed heap (glibc only; a no-op elsewhere). Returns whether
    it applied."""
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
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
    return _tuned


def device_problem(value: str) -> str | None:
    """Why ``value`` is not a usable torch device here (``None`` when it is): the one device check.

    An unknown name (``nosuch``) and ``cuda`` on a build or machine without CUDA are both refused up
    front, before any data is loaded or anything is written.
    """
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        return f"unknown torch device {value!r} (expected cpu, cuda or cuda:N)"
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return f"device {value!r} requested but this torch build or machine has no CUDA device"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"device {value!r}: only {torch.cuda.device_count()} CUDA device(s) present"
        return None
    if device.type == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return None
    return f"device {value!r} is not available here (expected cpu or cuda)"


def resolve_device(value: str | torch.device) -> torch.device:
    """``torch.device(value)`` after :func:`device_problem`; an unusable device is an InputError."""
    import torch

    from mmunlearn.errors import InputError

    if isinstance(value, torch.device):
        value = str(value)
    problem = device_problem(str(value))
    if problem:
        raise InputError(f"--device: {problem}")
    return torch.device(str(value))
