"""`bench status`: what a results folder holds, including a Retrain killed half-way, which the grid then
finishes from its snapshot."""

import json

import pytest
from click.testing import CliRunner

from mmunlearn.bench.grid import run_grid
from mmunlearn.bench.status import folder_status
from mmunlearn.cli import main
from mmunlearn.train import trainer
from tests.bench.conftest import tiny_config

AUDITS_OFF = dict(mia=False, user_attack=False, cka=False, overlap=False, methods=["rebuild"], epochs=3)


class Killed(Exception):
    pass


def _die_in_epoch(monkeypatch, n):
    """Kill the process at the start of the n-th training epoch of this test (counting every model)."""
    real, calls = trainer.train_epoch, []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_epoch", dying)
    snapshots = trainer.Snapshots
    monkeypatch.setattr(trainer, "Snapshots", lambda folder, key, every_seconds=300.0: snapshots(folder, key, 0.0))


def test_status_names_the_training_a_killed_grid_left_and_the_grid_finishes_it(tmp_path, monkeypatch):
    out, cfg = tmp_path / "res", tiny_config(**AUDITS_OFF)
    _die_in_epoch(monkeypatch, 6)  # the original's 3 epochs, then the Retrain's 3rd
    with pytest.raises(Killed):
        run_grid(cfg, out, show_progress=False, report=False)
    status = folder_status(out)
    assert (status.done, status.total) == (0, 4)  # the reference cells are written once both Retrains exist
    [stopped] = status.in_training
    assert stopped.model.endswith("-s0") and "/retrain/retrain-" in stopped.model and stopped.epoch == 2
    assert any(m.endswith("original-s0") for m in status.saved_models)

    monkeypatch.undo()
    run_grid(cfg, out, show_progress=False, report=False)
    status = folder_status(out)
    assert (status.done, status.total, status.in_training) == (4, 4, [])
    retrain = json.loads(next(out.rglob("ref-retrain.json")).read_text())
    assert retrain["log"]["resumed"]["epoch"] == 2
    assert retrain["log"]["train_seconds"] >= retrain["log"]["resumed"]["seconds"]


def test_the_command_prints_each_folder_and_refuses_a_non_results_folder(tmp_path):
    out = tmp_path / "res"
    run_grid(tiny_config(**AUDITS_OFF), out, show_progress=False, report=False)
    result = CliRunner().invoke(main, ["bench", "status", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 of 4 cells" in result.output and "synthetic/lightgcn/user/s0: done" in result.output
    result = CliRunner().invoke(main, ["bench", "status", str(tmp_path)])
    assert result.exit_code != 0 and "not a results folder" in result.output
