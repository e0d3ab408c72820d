"""Retrain-free targets and TRU's exact part."""

from __future__ import annotations

import numpy as np
import torch

from mmunlearn.unlearn.targets import (
    KIND_ITEM,
    KIND_PAIR,
    KIND_USER,
    build_targets,
    negative_only_items,
    pair_kinds,
    quantile_match,
)
from mmunlearn.unlearn.tru.exact import exact_part

from .conftest import make_ctx


def test_quantile_match_has_the_reference_distribution_in_the_current_order():
    cur = np.array([0.3, 0.1, 0.2])
    out = quantile_match(cur, np.array([0.5, 0.9, 0.7]))
    assert np.all(np.argsort(out) == np.argsort(cur))
    assert out.min() >= 0.5 and out.max() <= 0.9


def test_kinds_by_regime(trained, small_data):
    assert (pair_kinds(make_ctx(trained, small_data, "user").applied) == KIND_USER).all()
    assert (pair_kinds(make_ctx(trained, small_data, "item").applied) == KIND_ITEM).all()
    kinds = pair_kinds(make_ctx(trained, small_data, "interaction").applied)
    assert (kinds == KIND_PAIR).mean() > 0.9


def test_targets_are_percentiles_with_the_documented_references(trained, small_data):
    ctx = make_ctx(trained, small_data, "interaction")
    model, _ = exact_part(ctx)
    tg = build_targets(model, ctx.applied)
    assert tg.target.shape == (len(ctx.applied.forget_pairs),)
    assert (tg.target >= 0).all() and (tg.target <= 1).all()
    info = tg.summary()
    assert info["pair_reference"]["valid_pairs"] > 0
    # deleted interactions start near the top and their target (held-out valid pairs) is lower
    assert info["pair"]["target_mean"] > info["pair"]["start_mean"]


def test_item_prior_moves_deleted_rows_to_the_negative_only_mean(trained, small_data):
    ctx = make_ctx(trained, small_data, "item")
    ref, how = negative_only_items(ctx.applied)
    assert len(ref) > 0 and how
    with_prior, log = exact_part(ctx, item_prior=True)
    plain, _ = exact_part(ctx, item_prior=False)
    rows = torch.as_tensor(ctx.applied.deleted_items)
    shift = (with_prior.item_emb[rows] - plain.item_emb[rows])
    expected = ctx.original.item_emb[torch.as_tensor(np.setdiff1d(ref, ctx.applied.deleted_items))].mean(0)
    assert torch.allclose(shift, expected.expand_as(shift), atol=1e-6)
    assert log["item_prior"] == len(rows)
