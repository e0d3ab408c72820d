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


# ----- issue 14: data loss, relative paths, --k, huge ids, devices ----------------------------------------
TRAIN_ARGS = ["train", "--dataset", "synthetic", "--model", "lightgcn", "--epochs", "1", "--min-epochs", "1",
              "--threads", "1", "--quiet", "--set", "n_layers=1", "--set", "dim=8"]


def test_train_over_an_existing_run_needs_force_and_swaps_whole_runs(tmp_path):
    from mmunlearn.pipeline import load_data_and_model

    out = tmp_path / "run"
    assert CliRunner().invoke(main, [*TRAIN_ARGS, "--out", str(out)]).exit_code == 0
    first = json.loads((out / "meta.json").read_text())["weights_sha256"]
    refused = CliRunner().invoke(main, [*TRAIN_ARGS, "--seed", "3", "--out", str(out)])
    assert refused.exit_code == 2 and "--force" in refused.output
    assert json.loads((out / "meta.json").read_text())["weights_sha256"] == first
    forced = CliRunner().invoke(main, [*TRAIN_ARGS, "--seed", "3", "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    loaded = load_data_and_model(out)  # weights and metadata belong together (hash verified on load)
    assert loaded.hash != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_relative_dataset_path_is_stored_absolute(tmp_path, monkeypatch):
    from mmunlearn.data.interactions import write_inter
    from mmunlearn.data.registry import load_dataset

    (tmp_path / "ds").mkdir()
    write_inter(load_dataset("synthetic"), tmp_path / "ds" / "d.inter")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, [*TRAIN_ARGS[:2], "ds", *TRAIN_ARGS[3:], "--out", "run"])
    assert res.exit_code == 0, res.output
    stored = json.loads((tmp_path / "run" / "meta.json").read_text())["data_spec"]["dataset"]
    assert stored == str((tmp_path / "ds").resolve())
    monkeypatch.chdir("/")
    assert CliRunner().invoke(main, ["evaluate", str(tmp_path / "run"), "--json"]).exit_code == 0


def test_recommend_caps_k_at_the_unseen_items(run_dir):
    from mmunlearn.data.registry import load_dataset

    data = load_dataset("synthetic")
    res = CliRunner().invoke(main, ["recommend", str(run_dir), "--user", "3", "--k", str(data.n_items), "--json"])
    assert res.exit_code == 0, res.output
    items = [r["item"] for r in json.loads(res.output.split("\n", 1)[-1] if res.output.startswith("note") else
                                             res.output)["3"]]
    seen = set(data.train[3].indices.tolist())
    assert len(items) == data.n_items - len(seen) and not seen & set(items)


@pytest.mark.parametrize("args, message", [
    (["--user", str(2 ** 70)], "unknown user id"), (["--user", "1", "--k", "0"], "--k 0"),
    (["--user", "1", "--device", "nosuch"], "unknown torch device"),
])
def test_recommend_bad_input_is_one_line(run_dir, args, message):
    res = CliRunner().invoke(main, ["recommend", str(run_dir), *args])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
