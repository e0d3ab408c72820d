"""Helpers for the data-layer tests: tiny interaction files written on the fly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_inter_file(tmp_path: Path) -> Callable[..., Path]:
    """Write ``lines`` (header first) as a TSV ``name`` in ``tmp_path``; return its path."""

    def write(lines: list[str], name: str = "toy.inter") -> Path:
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write


@pytest.fixture
def listing() -> Callable[[Path], list[str]]:
    """Every path under a folder (hidden temp files included), to prove a failure wrote nothing."""

    def run(folder: Path) -> list[str]:
        return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))

    return run
