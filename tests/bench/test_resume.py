"""A grid killed mid-way resumes without recomputing (or rewriting) finished cells."""

import os
import signal
import subprocess
import sys
import time

from mmunlearn.bench.grid import SLOW_CELL_ENV, read_cells, run_grid
from tests.bench.conftest import tiny_config, write_toml

AUDITS_OFF = dict(mia=False, user_attack=False, cka=False, overlap=False, methods=["rebuild", "rebuild-reset"])


def test_killed_grid_resumes_without_recomputing(tmp_path):
    out = tmp_path / "res"
    cfg_file = write_toml(tmp_path / "grid.toml", **AUDITS_OFF)
    env = dict(os.environ, **{SLOW_CELL_ENV: "2.0"})  # wide enough for a starved test process to see it
    proc = subprocess.Popen([sys.executable, "-m", "mmunlearn", "bench", "run", "--config", str(cfg_file),
                             "--out", str(out), "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    cells_dir = out / "cells"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if cells_dir.is_dir() and any(cells_dir.rglob("*.json")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    done = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cells_dir.rglob("*.json")}
    assert 1 <= len(done) < 5  # killed mid-grid
    assert not (out / "results.md").exists()
    original = out / "models/synthetic/lightgcn/original-s0/meta.json"
    original_stat = original.stat().st_mtime_ns

    res = run_grid(tiny_config(**AUDITS_OFF), out, show_progress=False)
    assert res.skipped == len(done) and len(res.computed) == 5 - len(done)
    assert {c.path(out) for c in res.computed}.isdisjoint(done)
    for path, stat in done.items():
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stat, f"{path} was rewritten"
    assert original.stat().st_mtime_ns == original_stat  # the original was loaded, not retrained
    assert len(read_cells(out)) == 5 and (out / "results.md").is_file()
