"""Data-parallel training on torch.distributed: 2 local processes on loopback (gloo), tiny data.

One 2-process run (module fixture: spawning costs seconds) serves all tests.
"""

from __future__ import annotations

import pytest
import torch

from mmunlearn.checkpoint import load_checkpoint, weights_hash
from mmunlearn.evaluate.ranking import evaluate_split
from mmunlearn.models.registry import build_model, model_config
from mmunlearn.pipeline import DataSpec, PreparedData, train_and_save
from mmunlearn.train.trainer import TrainConfig, seed_everything, train
from tests.conftest import tiny_dataset

CFG = TrainConfig(epochs=3, min_epochs=1, patience=5, batch_size=64, lr=1e-2, threads=1)
MCFG = {"dim": 8, "n_layers": 2}


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory):
    data = tiny_dataset()
    prepared = PreparedData(data=data, spec=DataSpec(dataset="tiny"))
    out = tmp_path_factory.mktemp("dp") / "run"
    run = train_and_save(prepared, "lightgcn", model_config("lightgcn", ("t", MCFG)), CFG, out,
                         show_progress=False, nproc=2)
    return data, out, run


def test_two_ranks_end_bit_identical(dp_run):
    _, _, run = dp_run
    rec = run.meta["distributed"]
    assert rec["world"] == 2 and rec["backend"] == "gloo" and rec["batch_mode"] == "split"
    assert len(run.result.rank_hashes) == 2 and run.result.rank_hashes[0] == run.result.rank_hashes[1]
    assert rec["rank_hashes_equal"]


def test_two_processes_match_one_process(dp_run):
    """Split mode is the single-process optimisation (same batches, same steps): equal up to float order."""
    data, out, run = dp_run
    seed_everything(CFG.seed)
    single = build_model("lightgcn", data, model_config("lightgcn", ("t", MCFG)))
    res = train(single, data, CFG, show_progress=False)
    dp = load_checkpoint(out, data).model
    assert res.best_epoch == run.result.best_epoch and run.result.epochs_run == res.epochs_run
    for (name, a), (_, b) in zip(single.state_dict().items(), dp.state_dict().items(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name


def test_split_mode_is_one_process_training_for_a_batch_level_contrastive_loss():
    """MGCN's InfoNCE takes the batch as its negatives (not a sum over pairs): a rank that computed it on its
    half of the batch would train a different loss (it did until 2026-12-04, BENCHMARKS §6b). Split mode
    must still be the single-process optimisation."""
    from mmunlearn.data.synthetic import SyntheticConfig, generate
    from mmunlearn.train.distributed import train_distributed

    data = generate(SyntheticConfig(n_users=80, n_items=50, n_factors=4, interactions_per_user=8.0, seed=1))
    mcfg = model_config("mgcn", ("t", {"dim": 8, "cl_weight": 0.5}))  # a large InfoNCE weight: a wrong split shows
    cfg = TrainConfig(epochs=2, min_epochs=2, patience=5, batch_size=64, lr=1e-2, threads=1)
    seed_everything(cfg.seed)
    single = build_model("mgcn", data, mcfg)
    seed_everything(cfg.seed)
    dp = build_model("mgcn", data, mcfg)
    dp.load_state_dict(single.state_dict())
    train(single, data, cfg, show_progress=False)
    res = train_distributed(dp, data, cfg, 2, show_progress=False)
    assert res.rank_hashes[0] == res.rank_hashes[1]
    for (name, a), (_, b) in zip(single.state_dict().items(), dp.state_dict().items(), strict=True):
        if a.is_floating_point():
            assert torch.allclose(a, b, atol=1e-5), name


def test_two_process_checkpoint_loads_in_one_process(dp_run):
    data, out, run = dp_run
    ckpt = load_checkpoint(out, data)
    assert ckpt.model.name == "lightgcn" and weights_hash(ckpt.model) == run.meta["weights_sha256"]
    assert evaluate_split(ckpt.model, data, "test")["recall@20"] == pytest.approx(run.test["recall@20"])


@pytest.mark.slow
def test_parallel_shards_equal_sequential_shards():
    """Shards trained by 2 ranks are the shards one process trains (per-shard seeds; one more spawn)."""
    from mmunlearn.models.sharded import sharded_config
    from mmunlearn.train.sharded import train_sharded

    data = tiny_dataset()
    cfg = sharded_config("lightgcn", model_config("lightgcn", ("t", MCFG)), 2, "random")
    models = []
    for nproc in (1, 2):
        model = build_model("sharded", data, cfg)
        train_sharded(model, data, CFG, nproc=nproc)
        models.append(model)
    assert weights_hash(models[0]) == weights_hash(models[1])
