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
