"""Process-level runtime settings."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str, **env: str) -> str:
    import os

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, **env})
    return proc.stdout.strip()


def test_tune_allocator_applies_once_on_linux_and_can_be_turned_off() -> None:
    code = "from mmunlearn.runtime import tune_allocator as t; print(t(), t())"
    expected = "True True" if sys.platform.startswith("linux") else "False False"
    assert _run(code) == expected
    assert _run(code, MMUNLEARN_MALLOC="system") == "False False"


def _faults_of_repeated_allocations(tuned: bool) -> int:
    """Minor page faults of allocating and freeing 8 MB and 28 MB tensors (LightGCN-sized) five times."""
    code = ("import resource, sys\n"
            "from mmunlearn.runtime import tune_allocator\n"  # the package first, as the CLI does
            f"{'tune_allocator()' if tuned else 'pass'}\n"
            "import torch\n"
            "for _ in range(2): torch.ones(2, 2**20); torch.ones(7, 2**20)\n"
            "f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(5): torch.ones(2, 2**20); torch.ones(7, 2**20)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)\n")
    return int(_run(code))


def test_tuned_allocator_serves_blocks_below_32_mb_without_page_faults() -> None:
    if not sys.platform.startswith("linux"):
        return
    untuned = _faults_of_repeated_allocations(tuned=False)  # glibc's default maps and trims them anew
    if untuned == 0:
        pytest.skip("this libc/kernel does not page-fault repeated allocations: nothing to tune")
    tuned = _faults_of_repeated_allocations(tuned=True)
    assert tuned < 50 and tuned * 10 < untuned
