"""Branch-wise modality scaling changes each branch's update norm by exactly its scale c_b."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmunlearn.data.requests import apply_request, sample_request
from mmunlearn.unlearn import build_method
from mmunlearn.unlearn.base import UnlearnContext
from mmunlearn.unlearn.tru.scaling import branch_ratios, branch_scales


def test_branch_scales_clip_and_normalise():
    s = branch_scales({"id": 1.0, "image": 4.0, "text": 0.1}, c_min=0.25, c_max=2.0)
    mean = (1.0 + 4.0 + 0.1) / 3
    assert s["id"] == pytest.approx(1.0 / mean)
    assert s["image"] == 2.0 and s["text"] == 0.25  # clipped
    assert branch_scales({"id": 3.0}, 0.25, 2.0) == {"id": 1.0}


def test_branch_ratios():
    gf = {"a": torch.ones(4), "b": torch.ones(4) * 2}
    gr = {"a": torch.ones(4), "b": torch.ones(4)}
    r = branch_ratios(gf, gr, {"a": "id", "b": "image"})
    assert r["id"] == pytest.approx(1.0) and r["image"] == pytest.approx(2.0)


def _deltas(model, original, branches):
    out = {}
    for b, names in branches.items():
        sq = sum(float((dict(model.named_parameters())[n] - dict(original.named_parameters())[n]).detach()
                       .double().pow(2).sum()) for n in names)
        out[b] = np.sqrt(sq)
    return out


def _interaction_ctx(toy_trained, small_data) -> UnlearnContext:
    applied = apply_request(small_data, sample_request(small_data, "interaction", 0.1, 0))
    return UnlearnContext(original=toy_trained, applied=applied, model_name="toy-mm", model_config=None)


def test_update_norm_per_branch_follows_the_scale(toy_trained, small_data):
    ctx = _interaction_ctx(toy_trained, small_data)
    common = {"epochs": 1, "tol": 0.0, "isolation": False, "lr": 0.05, "max_rel_step": 1e9}
    on = build_method("tru", **common).run(ctx)
    off = build_method("tru", scaling=False, **common).run(ctx)
    scales = on.log["branch_scales"]
    assert set(scales) == {"id", "image", "text"}
    assert len({round(v, 6) for v in scales.values()}) > 1  # the probe found different ratios
    assert off.log["branch_scales"] == {"id": 1.0, "image": 1.0, "text": 1.0}
    branches = toy_trained.modality_branches()
    d_on, d_off = _deltas(on.model, toy_trained, branches), _deltas(off.model, toy_trained, branches)
    for b, c in scales.items():
        assert d_off[b] > 0
        assert d_on[b] / d_off[b] == pytest.approx(c, rel=1e-4)


def test_a_lone_written_branch_is_not_rescaled(toy_trained, small_data):
    """With shared groups kept out, the push writes the ID rows only: the ratios of the content branches
    it never updates must not turn c_id into a step-size change (BENCHMARKS §9r)."""
    ctx = _interaction_ctx(toy_trained, small_data)
    common = {"epochs": 2, "tol": 0.0, "shared": "never"}
    on = build_method("tru", **common).run(ctx)
    off = build_method("tru", scaling=False, **common).run(ctx)
    assert set(on.log["branch_ratios"]) == {"id", "image", "text"}  # the probe still measures every branch
    assert len({round(v, 6) for v in on.log["branch_ratios"].values()}) > 1  # ... and they differ
    assert on.log["branch_scales"] == {"id": 1.0}
    assert on.log["steps"] > 0
    for (name, p_on), p_off in zip(on.model.named_parameters(), off.model.parameters(), strict=True):
        assert torch.equal(p_on, p_off), name
