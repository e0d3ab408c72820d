"""`bench status`: what a results folder holds, including a Retrain killed half-way, which the grid then
finishes from its snapshot."""

import json

import pytest
from click.testing import CliRunner

from mmunlearn.bench.grid import run_grid
from mmunlearn.bench.status import folder_status
from mmunlearn.cli import main
from tests.bench.conftest import tiny_config
from tests.conftest import TrainingKilled

AUDITS_OFF = dict(mia=False, user_attack=False, cka=False, overlap=False, methods=["rebuild"], epochs=3)


def test_status_names_the_training_a_killed_grid_left_and_the_grid_finishes_it(tmp_path, kill_training):
    out, cfg = tmp_path / "res", tiny_config(**AUDITS_OFF)
    kill_training(6)  # the original's 3 epochs, then the Retrain's 3rd
    with pytest.raises(TrainingKilled):
        run_grid(cfg, out, show_progress=False, report=False)
    status = folder_status(out)
    assert (status.done, status.total) == (0, 4)  # the reference cells are written once both Retrains exist
    [stopped] = status.in_training
    assert stopped.model.endswith("-s0") and "/retrain/retrain-" in stopped.model and stopped.epoch == 2
    assert any(m.endswith("original-s0") for m in status.saved_models)

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
