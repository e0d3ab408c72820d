"""Sharded exact unlearning (sisa, receraser): only the touched shards change, checkpoints round-trip,
and a killed shard retrain leaves parent and ledger intact and resumes from its per-shard markers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mmunlearn.checkpoint import read_meta, weights_hash
from mmunlearn.cli import main
from mmunlearn.data.requests import ForgetRequest, apply_request, save_request
from mmunlearn.errors import InputError
from mmunlearn.models.registry import model_config
from mmunlearn.models.sharded import ShardedRecommender, sharded_config
from mmunlearn.pipeline import DataSpec, load_data_and_model, prepare_data, train_and_save
from mmunlearn.train.sharded import PAUSE_ENV
from mmunlearn.train.trainer import TrainConfig
from mmunlearn.unlearn.base import UnlearnContext, build_method
from mmunlearn.workflow.ledger import read_ledger
from mmunlearn.workflow.runner import progress_dir

REPO = Path(__file__).resolve().parents[2]
TCFG = TrainConfig(epochs=2, min_epochs=1, threads=1, batch_size=512, lr=1e-2)


def _train(out: Path, partition: str, k: int = 3) -> Path:
    backbone = model_config("lightgcn", ("t", {"dim": 8, "n_layers": 2}))
    cfg = sharded_config("lightgcn", backbone, k, partition)
    train_and_save(prepare_data(DataSpec(dataset="synthetic")), "sharded", cfg, TCFG, out, show_progress=False)
    return out


@pytest.fixture(scope="module")
def sisa_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("sisa") / "parent", "random")


@pytest.fixture(scope="module")
def receraser_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("rec") / "parent", "item")


def _ctx(run_dir: Path, request: ForgetRequest, **kw) -> UnlearnContext:
    ckpt = load_data_and_model(run_dir)
    return UnlearnContext(original=ckpt.model, applied=apply_request(ckpt.data, request), model_name="sharded",
                          model_config=ckpt.model.config, train_config=TCFG, **kw)


def _shard_state(model: ShardedRecommender, k: int) -> dict[str, torch.Tensor]:
    return {n: t.clone() for n, t in model.shards[k].state_dict().items()}


def test_sharded_checkpoint_round_trips(sisa_run):
    meta = read_meta(sisa_run)
    assert meta["model"] == "sharded" and meta["sharded"]["shards"] == 3
    assert not (sisa_run.parent / f".{sisa_run.name}.progress").exists()  # progress is removed once the checkpoint exists
    ckpt = load_data_and_model(sisa_run)
    assert isinstance(ckpt.model, ShardedRecommender) and weights_hash(ckpt.model) == meta["weights_sha256"]
    assert any(n.startswith("shards.2.") for n in ckpt.model.state_dict()) and "shard_of" in ckpt.model.state_dict()
    from mmunlearn.evaluate.ranking import evaluate_split

    assert evaluate_split(ckpt.model, ckpt.data, "test")["recall@20"] == pytest.approx(
        meta["metrics"]["test"]["recall@20"])


@pytest.mark.parametrize(("fixture", "method"), [("sisa_run", "sisa"), ("receraser_run", "receraser")])
def test_a_deletion_touches_only_its_shards(request, fixture, method):
    run_dir = request.getfixturevalue(fixture)
    ckpt = load_data_and_model(run_dir)
    model: ShardedRecommender = ckpt.model
    shard_of = model.assignment()
    if model.axis == "user":  # one user's whole history: exactly the user's shard
        target = int(np.flatnonzero(np.diff(ckpt.data.train.indptr) > 0)[0])
        req = ForgetRequest.explicit(users=[target])
    else:  # one item: exactly the item's shard
        target = int(np.bincount(ckpt.data.train.indices).argmax())
        req = ForgetRequest.explicit(items=[target])
    touched = int(shard_of[target])
    before = {k: _shard_state(model, k) for k in range(model.n_shards)}
    res = build_method(method).run(_ctx(run_dir, req))
    assert res.log["retrained_shards"] == [touched]
    assert res.log["untouched_shards"] == [k for k in range(model.n_shards) if k != touched]
    assert set(res.log["shard_seconds"]) == {str(touched)}
    for k in range(model.n_shards):
        after = res.model.shards[k].state_dict()
        same = all(torch.equal(before[k][n], after[n]) for n in before[k])
        assert same == (k != touched), f"shard {k}"
    assert weights_hash(model) == read_meta(run_dir)["weights_sha256"]  # original untouched
    if method == "receraser":
        assert res.log["aggregator"] == "attention" and res.log["aggregator_seconds"] > 0


def test_methods_refuse_the_wrong_checkpoint(sisa_run):
    req = ForgetRequest.explicit(users=[0])
    with pytest.raises(InputError, match="attention"):
        build_method("receraser").run(_ctx(sisa_run, req))


def test_killed_shard_retrain_leaves_model_and_ledger_intact_and_resumes(sisa_run, tmp_path):
    data = load_data_and_model(sisa_run).data
    shard_of = load_data_and_model(sisa_run).model.assignment()
    users = [int(np.flatnonzero(shard_of == k)[0]) for k in range(3)]  # one user per shard: all 3 touched
    req = tmp_path / "req.json"
    save_request(req, ForgetRequest.explicit(users=users))
    before = {p.name: p.read_bytes() for p in sisa_run.iterdir() if p.is_file() and not p.name.startswith("ledger")}
    n_ledger = len(read_ledger(sisa_run))
    out = tmp_path / "child"
    env = {**os.environ, PAUSE_ENV: "60", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mmunlearn.cli import main; main()", "unlearn", "--checkpoint", str(sisa_run),
         "--request", str(req), "--method", "sisa", "--out", str(out), "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    progress = progress_dir(out)
    deadline = time.time() + 90
    while time.time() < deadline and not list(progress.glob("shard-*.json")):
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.1)
    markers = list(progress.glob("shard-*.json"))
    assert len(markers) == 1, "the job should pause after its first finished shard"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert {p.name: p.read_bytes() for p in sisa_run.iterdir() if p.is_file() and not p.name.startswith("ledger")} == before
    assert len(read_ledger(sisa_run)) == n_ledger  # nothing recorded
    assert not (out / "meta.json").exists()
    done = int(json.loads(markers[0].read_text())["key"]["shard"])
    # resume: only the two shards without a marker are trained
    res = CliRunner().invoke(main, ["unlearn", "--checkpoint", str(sisa_run), "--request", str(req), "--method",
                                    "sisa", "--out", str(out), "--threads", "1"])
    assert res.exit_code == 0, res.output
    entry = read_ledger(sisa_run)[-1]
    assert len(read_ledger(sisa_run)) == n_ledger + 1
    assert entry["shards"]["resumed_shards"] == [done] and entry["shards"]["retrained_shards"] == [0, 1, 2]
    assert not progress.exists()
    # and the resumed child is the very model an uninterrupted run makes
    fresh = build_method("sisa").run(_ctx(sisa_run, ForgetRequest.explicit(users=users)))
    assert weights_hash(fresh.model) == read_meta(out)["weights_sha256"]
    assert load_data_and_model(out).data.train.nnz == data.train.nnz - int(data.train[users].nnz)


def test_a_sharded_miggt_resets_each_shard_its_own_way(small_data):
    """reset_rows goes to every shard: MIG-GT shards detach the items (and report rows for them only)."""
    backbone = model_config("miggt", ("t", {"dim": 8, "hidden": 16, "hops": "id=1,image=1,text=1"}))
    model = ShardedRecommender(small_data, sharded_config("miggt", backbone, 2, "random"))
    items = np.array([3, 8])
    assert not model.items_with_rows(items).any()
    model.reset_rows(np.array([0]), items, seed=0)
    assert all(list(shard.detached_items()) == [3, 8] for shard in model.shards)
    assert list(model.items_with_rows(np.array([3, 4, 8]))) == [True, False, True]
    assert {"shards.0.item_override", "shards.1.item_override"} <= set(model.embedding_tables())
    ref = model.item_table_rows("shards.1.item_override", np.array([4]))
    torch.testing.assert_close(ref, model.shards[1].item_table_rows("item_override", np.array([4])))
