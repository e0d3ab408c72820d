"""The one atomic-write helper, the staged folder swap, the file lock and the JSON encoder."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from mmunlearn.errors import InputError
from mmunlearn.io import atomic_write_bytes, atomic_write_json, dumps, file_lock, staged_dir


def test_atomic_writes_get_the_umask_mode_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        atomic_write_json(tmp_path / "b.json", {"n": np.int64(3)})
    finally:
        os.umask(old)
    for name in ("a.bin", "b.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
    assert json.loads((tmp_path / "b.json").read_text()) == {"n": 3}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_one_encoder_for_numpy_and_paths() -> None:
    assert json.loads(dumps({"a": np.float32(0.5), "b": np.arange(2), "c": Path("/x")})) == \
        {"a": 0.5, "b": [0, 1], "c": "/x"}
    with pytest.raises(TypeError):
        dumps({"x": object()})


def test_staged_dir_refuses_then_swaps_and_cleans_up(tmp_path: Path) -> None:
    final = tmp_path / "run"
    final.mkdir()
    (final / "meta.json").write_text("old")
    with pytest.raises(InputError, match="--force"), staged_dir(final, force=False):
        pass
    with pytest.raises(RuntimeError), staged_dir(final, force=True) as stage:
        (stage / "meta.json").write_text("half")
        raise RuntimeError("killed mid-write")
    assert (final / "meta.json").read_text() == "old"  # a failed write leaves the old run
    with staged_dir(final, force=True) as stage:
        (stage / "meta.json").write_text("new")
    assert (final / "meta.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging or old folders left


def _hold(path: str, ready, release) -> None:
    with file_lock(Path(path), what="the thing"):
        ready.set()
        release.wait(10)


def test_file_lock_refuses_a_second_holder_without_waiting(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path / "x.lock"), ready, release))
    proc.start()
    try:
        assert ready.wait(60)
        with pytest.raises(InputError, match="the thing is in use by another process"), \
                file_lock(tmp_path / "x.lock", what="the thing", wait=False):
            pass
    finally:
        release.set()
        proc.join(30)
    with file_lock(tmp_path / "x.lock", what="the thing", wait=False):  # free once the holder is gone
        pass
