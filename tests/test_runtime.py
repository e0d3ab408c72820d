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


def test_device_check_refuses_unknown_and_unavailable_devices() -> None:
    import pytest
    import torch

    from mmunlearn.errors import InputError
    from mmunlearn.runtime import device_problem, resolve_device

    assert device_problem("cpu") is None and resolve_device("cpu") == torch.device("cpu")
    assert "unknown torch device" in device_problem("nosuch")
    if not torch.cuda.is_available():
        assert "no CUDA device" in device_problem("cuda")
    assert device_problem(f"cuda:{torch.cuda.device_count() + 3}") is not None
    with pytest.raises(InputError, match="--device"):
        resolve_device("nosuch")
