"""The retrain-free summary a checkpoint and a stream step record."""

from __future__ import annotations

import pytest

from mmunlearn.errors import InputError
from mmunlearn.unlearn.tru.exact import exact_part
from mmunlearn.workflow.runner import summarise

from ..unlearn.conftest import content_fold_case


def test_the_proxy_is_built_on_the_reference_the_method_aimed_at():
    """tru-fold-pairs aims at the fold-pair reference: its checkpoint's proxy gap (and a stream's drift
    budget) must measure it there, not against the never-positive default (BENCHMARKS §9l)."""
    ctx, _ = content_fold_case("miggt")
    model, _ = exact_part(ctx)
    default = summarise(model, ctx)
    fold = summarise(model, ctx, "fold-pairs")
    assert default["proxy_item_reference"] == "never-positive" and fold["proxy_item_reference"] == "fold-pairs"
    assert fold["proxy_pct_mean"] == pytest.approx(default["proxy_pct_mean"])  # the same model, scored alike
    assert fold["proxy_target_mean"] < default["proxy_target_mean"] - 0.05
    assert fold["proxy_gap"] > default["proxy_gap"] + 0.05
    with pytest.raises(InputError, match="item_reference"):
        summarise(model, ctx, "retrain")
