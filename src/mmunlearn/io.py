"""Atomic file writes: a reader never sees a half-written file, and a crash leaves the old one intact."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def append_line_atomic(path: Path, line: str) -> None:
    """Append one line with a single ``O_APPEND`` write + fsync: concurrent or killed writers never
    interleave or truncate earlier lines (a crash can at worst lose the line being written)."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def install_folder(build: Path, dest: Path) -> None:
    """Swap a finished build folder into ``dest``; an old copy is moved aside first, then removed.

    Readers see the old folder or the new one, never a mix: the build is made complete beside
    ``dest`` (same file system) and renamed in.
    """
    build, dest = Path(build), Path(dest)
    os.chmod(build, 0o777 & ~_umask())  # mkdtemp makes 0700; the installed folder gets the usual mode
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
        os.replace(dest, old / "data")
    try:
        os.replace(build, dest)
    except OSError:
        if old is not None:
            os.replace(old / "data", dest)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
