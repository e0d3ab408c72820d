"""A grid killed mid-way resumes without recomputing (or rewriting) finished cells; --rerun recomputes the
named methods' cells only."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mmunlearn.bench.grid import SLOW_CELL_ENV, read_cells, run_grid
from mmunlearn.errors import InputError
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


def test_rerun_recomputes_only_the_named_methods_cells_on_the_same_models(tmp_path):
    out = tmp_path / "res"
    cfg = tiny_config(**AUDITS_OFF)
    run_grid(cfg, out, show_progress=False, report=False)
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "cells").rglob("*.json")}
    original = out / "models/synthetic/lightgcn/original-s0/meta.json"
    original_stat = original.stat().st_mtime_ns

    res = run_grid(cfg, out, show_progress=False, report=False, rerun=["rebuild"])
    assert [c.method for c in res.computed] == ["rebuild"] and res.skipped == 4
    for path, stat in before.items():
        rewritten = (path.stat().st_ino, path.stat().st_mtime_ns) != stat
        assert rewritten == (path.name == "rebuild.json"), path
    assert original.stat().st_mtime_ns == original_stat  # the original was loaded, not retrained
    runs = json.loads((out / "grid.json").read_text())["runs"]
    assert "rerun" not in runs[0] and runs[-1]["rerun"] == ["rebuild"]


def test_rerun_of_a_method_the_grid_lacks_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "res"
    cfg = tiny_config(**AUDITS_OFF)
    run_grid(cfg, out, show_progress=False, report=False)
    record = (out / "grid.json").read_bytes()
    with pytest.raises(InputError, match="--rerun tru: not a method of this grid"):
        run_grid(cfg, out, show_progress=False, report=False, rerun=["tru"])
    assert (out / "grid.json").read_bytes() == record


def test_extending_a_user_regime_group_reuses_the_saved_attack_shadow(tmp_path, monkeypatch):
    import mmunlearn.train.shadow as shadow_module

    out = tmp_path / "res"
    only_user_attack = dict(mia=False, cka=False, overlap=False)
    run_grid(tiny_config(**only_user_attack), out, show_progress=False, report=False)
    shadows = list((out / "models/synthetic/lightgcn").glob("shadow-s1000-*/meta.json"))
    assert len(shadows) == 1
    saved = shadows[0].stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("trained the attack's shadow again although it was saved")

    monkeypatch.setattr(shadow_module, "train", no_training)
    res = run_grid(tiny_config(methods=["rebuild", "rebuild-reset"], **only_user_attack), out, extend=True,
                   show_progress=False, report=False)
    assert [c.method for c in res.computed] == ["rebuild-reset"]
    assert shadows[0].stat().st_mtime_ns == saved
    cell = json.loads(res.computed[0].path(out).read_text())
    assert "user_attack" in cell["audits"]
