"""Safe file writes: atomic files, swapped folders, file locks, and the one JSON encoder.

- :func:`atomic_write` (and ``_bytes`` / ``_text`` / ``_json``): a reader never sees a half-written file
  and a crash leaves the old one intact; the file gets the usual ``0666 & ~umask`` mode, not the
  ``0600`` of the temp file it was written as.
- :func:`staged_dir`: a whole run folder is written beside its destination and swapped in, so a kill
  at any point leaves either the old run or the new one at the destination, never new weights under
  old metadata.
- :func:`file_lock`: an ``fcntl.flock`` on a lock file, for read-check-append sequences that must not
  interleave between processes (the ledger, the duplicate-request check, a child folder).
- :func:`dumps`: the JSON encoding of numpy scalars/arrays and paths every writer shares.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mmunlearn.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    atomic_write(path, lambda p: p.write_bytes(payload))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, dumps(obj, indent=2) + "\n")


def append_line_atomic(path: Path, line: str) -> None:
    """Append one line with a single ``O_APPEND`` write + fsync: concurrent or killed writers never
    interleave or truncate earlier lines (a crash can at worst lose the line being written)."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def file_lock(path: Path, *, what: str, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` body.

    ``wait=False`` refuses at once with an :class:`InputError` naming ``what`` when another process
    holds it (for long operations, where queueing silently behind another run is not what a user wants).
    The lock dies with the process, so a killed holder never leaves a stale lock.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise InputError(f"{path}: cannot open lock file for {what}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise InputError(f"{what} is in use by another process (lock {path}); try again when it "
                                 f"has finished") from None
            raise
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged_dir(final: Path, *, force: bool, what: str = "run folder") -> Iterator[Path]:
    """Yield an empty staging folder beside ``final``; on success swap it in as ``final``.

    ``final`` holding a run (any content) is refused unless ``force``. With ``force`` the old folder is
    renamed aside, the staged one renamed in, and only then the old one deleted: a kill between the two
    renames leaves no folder at ``final`` (and the old run intact under ``.<name>.old-*``), never a mix
    of the two. On an exception the staging folder is removed and ``final`` is untouched.
    """
    final = Path(final)
    check_target_dir(final, force=force, what=what)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.new-", dir=final.parent))
    try:
        yield stage
        with swapped_in(stage, final):
            pass
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def check_target_dir(final: Path, *, force: bool, what: str = "run folder") -> None:
    """Refuse to write into ``final`` when it is a file, or a non-empty folder and not ``force``.

    Called before any long work starts, so a refusal costs nothing; :func:`staged_dir` checks again.
    """
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise InputError(f"{final}: exists and is not a folder")
    if final.is_dir() and any(final.iterdir()) and not force:
        raise InputError(f"{final}: already holds a {what}; choose another folder or pass --force")


@contextlib.contextmanager
def swapped_in(stage: Path, final: Path) -> Iterator[None]:
    """Put folder ``stage`` at ``final`` for the ``with`` body; undo it if the body raises.

    An existing ``final`` is renamed aside first and deleted only once the body has succeeded; if the
    body fails (e.g. recording the new folder in a ledger), the new folder goes back to ``stage`` and the
    old one returns to ``final``. A kill between the renames leaves the old folder intact under
    ``.<name>.old-*`` beside ``final``.
    """
    aside = None
    if final.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, aside)  # an empty dir is replaced by a rename onto it
    os.replace(stage, final)
    try:
        yield
    except BaseException:
        os.replace(final, stage)
        if aside is not None:
            os.replace(aside, final)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for the numpy scalars/arrays and paths our records hold."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """The one JSON encoding of records (sorted keys; numpy and paths converted)."""
    return json.dumps(obj, indent=indent, sort_keys=True, default=json_default)


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
