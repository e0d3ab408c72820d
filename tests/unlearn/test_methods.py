"""Every registered method runs on a small planted dataset and returns a model, seconds and a log."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmunlearn.checkpoint import weights_hash
from mmunlearn.evaluate.forgetting import model_percentiles
from mmunlearn.unlearn import build_method, method_names
from mmunlearn.unlearn.base import UnlearnContext

from .conftest import make_ctx

ALL = ["retrain", "rebuild", "rebuild-reset", "finetune", "neggrad", "mmrecun", "tru", "tru-no-gate",
       "tru-no-scaling", "tru-no-isolation", "tru-no-repair", "tru-shared-always", "tru-fold-pairs"]


def test_registry_has_every_method():
    assert set(ALL) <= set(method_names())


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("regime", ["interaction", "item"])
def test_method_runs_and_leaves_the_original_alone(trained, small_data, name, regime):
    ctx = make_ctx(trained, small_data, regime)
    before = weights_hash(ctx.original)
    method = build_method(name, epochs=1) if name in ("finetune", "neggrad", "mmrecun", "tru-no-gate") \
        else build_method(name)
    res = method.run(ctx)
    assert res.model is not ctx.original
    assert res.seconds > 0
    assert res.log["method"] == name and "config" in res.log
    assert weights_hash(ctx.original) == before  # never mutated
    # the unlearned model sees the retain graph: its adjacency has no deleted edge
    adj = res.model.adj.to_dense()
    n_u = small_data.n_users
    fp = ctx.applied.forget_pairs
    assert float(adj[fp[:, 0], n_u + fp[:, 1]].abs().sum()) == 0.0
    if name != "retrain":
        assert res.log.get("rebuilt_graph") is True


def test_rebuild_reset_reinitialises_exactly_the_deleted_rows(trained, small_data):
    ctx = make_ctx(trained, small_data, "user")
    res = build_method("rebuild-reset").run(ctx)
    gone = ctx.applied.deleted_users
    keep = np.setdiff1d(np.arange(small_data.n_users), gone)
    assert len(gone) > 0
    assert torch.equal(res.model.user_emb[keep], ctx.original.user_emb[keep])
    assert not torch.allclose(res.model.user_emb[gone], ctx.original.user_emb[gone])
    assert res.log["reset_users"] == len(gone)


def test_tru_log_records_what_it_did(trained, small_data):
    ctx = make_ctx(trained, small_data, "interaction")
    res = build_method("tru").run(ctx)
    log = res.log
    assert set(log["isolation"]) >= {"groups", "sensitivity", "rows"}
    assert log["branch_scales"] == {"id": 1.0}  # one branch: nothing to scale
    assert log["epochs"] and {"gap", "mean_abs_w", "push_share", "pull_share"} <= set(log["epochs"][0])
    assert log["targets"]["pair"]["n"] > 0


@pytest.mark.parametrize("scale", ["logit", "percentile"])
def test_tru_moves_deleted_pairs_towards_the_target(trained, small_data, scale):
    ctx = make_ctx(trained, small_data, "interaction", ratio=0.15)
    start = model_percentiles(build_method("rebuild").run(ctx).model, ctx.applied.forget_pairs,
                              ctx.applied.retain.train).mean()
    res = build_method("tru", gate_scale=scale).run(ctx)
    assert res.log["config"]["gate_scale"] == scale
    target = res.log["targets"]["target_mean"]
    end = model_percentiles(res.model, ctx.applied.forget_pairs, ctx.applied.retain.train).mean()
    assert abs(end - target) < abs(start - target)


def test_methods_run_on_a_multimodal_backbone(toy_trained, small_data):
    from mmunlearn.data.requests import apply_request, sample_request

    applied = apply_request(small_data, sample_request(small_data, "interaction", 0.1, 0))
    ctx = UnlearnContext(original=toy_trained, applied=applied, model_name="toy-mm", model_config=None)
    for name in ("rebuild-reset", "mmrecun", "tru"):
        res = build_method(name).run(ctx)
        assert res.model.rebuilt == applied.retain.train.nnz
        assert res.seconds > 0


def test_tru_on_mgcn_with_feature_tables(small_data):
    """MGCN's trainable feature tables are item-indexed but not in the scoring space: TRU must cope."""
    mgcn = pytest.importorskip("mmunlearn.models.mgcn")
    from mmunlearn.data.requests import apply_request, sample_request

    torch.manual_seed(0)
    cfg = mgcn.MGCNConfig()
    model = mgcn.MGCN(small_data, cfg)
    applied = apply_request(small_data, sample_request(small_data, "interaction", 0.1, 0))
    ctx = UnlearnContext(original=model, applied=applied, model_name="mgcn", model_config=cfg)
    res = build_method("tru", tol=0.0, epochs=2).run(ctx)
    assert res.log["steps"] == 2 and set(res.log["branch_scales"]) >= {"id"}
    assert all(torch.isfinite(p).all() for p in res.model.parameters())
