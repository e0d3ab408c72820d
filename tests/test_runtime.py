"""Process-level runtime settings."""

from __future__ import annotations

import subprocess
import sys


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


def test_tuned_allocator_serves_large_tensors_without_page_faults() -> None:
    if not sys.platform.startswith("linux"):
        return
    code = ("import resource\n"
            "from mmunlearn.runtime import tune_allocator\n"  # the package first, as the CLI does
            "import torch\n"
            "tune_allocator()\n"
            "for _ in range(2): torch.ones(64, 2**20)\n"
            "f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(5): torch.ones(64, 2**20)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)\n")
    assert int(_run(code)) < 100  # a fresh 256 MB block each time would fault ≥ 128 huge or 65k small pages
