import json

import pytest
from click.testing import CliRunner

from mmunlearn.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lgcn"
    res = CliRunner().invoke(main, ["train", "--dataset", "synthetic", "--model", "lightgcn", "--epochs", "2",
                                    "--min-epochs", "1", "--threads", "1", "--quiet", "--out", str(out),
                                    "--set", "n_layers=2"])
    assert res.exit_code == 0, res.output
    return out


def test_train_prints_provenance_and_saves_run(run_dir):
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["model"] == "lightgcn"
    assert meta["model_config"]["n_layers"] == 2  # --set reached the model
    assert meta["train_config"]["epochs"] == 2
    assert meta["data_spec"]["dataset"] == "synthetic"


def test_evaluate_json_has_every_metric(run_dir):
    res = CliRunner().invoke(main, ["evaluate", str(run_dir), "--json"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.output)
    for m in ("recall", "ndcg", "precision", "map", "hit"):
        for k in (5, 10, 20, 50):
            assert 0.0 <= metrics[f"{m}@{k}"] <= 1.0


def test_recommend_excludes_training_items(run_dir):
    from mmunlearn.data.registry import load_dataset

    res = CliRunner().invoke(main, ["recommend", str(run_dir), "--user", "3", "--k", "10", "--json"])
    assert res.exit_code == 0, res.output
    items = [r["item"] for r in json.loads(res.output)["3"]]
    assert len(items) == 10 == len(set(items))
    train_items = set(load_dataset("synthetic").train[3].indices.tolist())
    assert not train_items & set(items)


def test_unknown_user_is_one_line_error(run_dir):
    res = CliRunner().invoke(main, ["recommend", str(run_dir), "--user", "100000"])
    assert res.exit_code == 2
    assert "unknown user id" in res.output and "Traceback" not in res.output


def test_config_file_is_overridden_by_flags(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[train]\nepochs = 1\nlr = 0.01\nthreads = 1\n[model]\nn_layers = 1\n')
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--dataset", "synthetic", "--config", str(cfg), "--lr", "0.02",
                                    "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["train_config"]["lr"] == 0.02 and meta["train_config"]["epochs"] == 1
    assert meta["model_config"]["n_layers"] == 1


def test_unknown_config_key_is_refused(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("[train]\nepochz = 1\n")
    res = CliRunner().invoke(main, ["train", "--dataset", "synthetic", "--config", str(cfg),
                                    "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "unknown TrainConfig key 'epochz'" in res.output
    assert not (tmp_path / "r").exists()
