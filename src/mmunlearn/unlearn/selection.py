"""Hyper-parameter selection: one rule for every method, using neither test nor Retrain.

The rule (docs/TRU.md §Selection):

1. **Proxy target** — built once per request from TRU's exact part (graph rebuilt, fully deleted rows
   reset, deleted items at the never-positive prior): a retrain-free target percentile for every
   deleted pair (``unlearn/targets.py``: valid pairs for deleted interactions, never-positive items for
   deleted items, fresh rows for deleted users), estimated on a fixed item sample.
2. For every configuration in the method's small grid, run the method and measure
   - ``D`` = |mean percentile of the deleted pairs − mean target| (same estimator), the forgetting proxy;
   - ``V`` = valid NDCG@20 on the retain data (users outside a user request).
3. A configuration is **admissible** when ``V ≥ (1 − δ) · V_rebuild`` (δ = ``UTILITY_SLACK`` = 0.10),
   ``V_rebuild`` being the valid NDCG@20 of the zero-step ``rebuild`` model. The slack is loose on
   purpose: honest forgetting costs utility (the deleted data was useful), and how much is unknown
   without Retrain; the guard only rejects destructive configurations.
4. Among admissible configurations take those within ``TIE`` (0.005) of the smallest ``D``; among
   those, the ones within ``V_TIE`` (1 %, about the sampling noise of valid NDCG@20 on Baby) of the best
   ``V``, and of these the fastest. If none is admissible, take the highest ``V``.

Methods without hyper-parameters (``rebuild``, ``rebuild-reset``, ``retrain``) have a one-point grid.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import numpy as np

from mmunlearn.evaluate.forgetting import valid_utility
from mmunlearn.unlearn.base import UnlearnContext, UnlearnResult, build_method, method_config
from mmunlearn.unlearn.targets import ProxyTarget, build_targets

UTILITY_SLACK = 0.10
TIE = 0.005
V_TIE = 0.01
METRIC = "ndcg@20"

#: the grid searched for each method (the method's preset and defaults fill everything else)
GRIDS: dict[str, dict[str, list[Any]]] = {
    "retrain": {},
    "rebuild": {},
    "rebuild-reset": {},
    "finetune": {"epochs": [0.1, 0.3], "lr": [1e-3, 5e-3]},
    "neggrad": {"epochs": [1, 5], "lr": [1e-3, 1e-2]},
    "mmrecun": {"epochs": [5, 20], "lr": [1e-3, 1e-2]},
    "tru": {"lr": [50.0, 100.0], "precondition": [100.0, 300.0]},
    "tru-no-scaling": {"lr": [50.0, 100.0], "precondition": [100.0, 300.0]},
    "tru-no-isolation": {"lr": [50.0, 100.0], "precondition": [100.0, 300.0]},
    "tru-no-repair": {"lr": [50.0, 100.0], "precondition": [100.0, 300.0]},
    "tru-shared-always": {"lr": [50.0, 100.0], "precondition": [100.0, 300.0]},
    "tru-no-gate": {"lr": [10.0, 50.0], "epochs": [2, 5]},
    # the influence step of a BPR model is far longer than the parameters (the loss is flat in the
    # embeddings; docs/BENCHMARKS.md §7): its trust region is what decides, so that is what is searched
    "ifru": {"max_relative_step": [0.01, 0.03, 0.1], "damping": [0.1, 1.0]},
    "scif": {"max_relative_step": [0.01, 0.03, 0.1], "damping": [0.1, 1.0]},
}


def grid_configs(name: str, fixed: dict[str, Any] | None = None) -> list[Any]:
    """The configurations searched for ``name``; ``fixed`` settings (not searched) apply to all of them."""
    base = method_config(name, ("fixed settings", fixed or {}))
    grid = GRIDS.get(name, {})
    keys = list(grid)
    return [replace(base, **dict(zip(keys, values, strict=True)))
            for values in itertools.product(*(grid[k] for k in keys))] or [base]


class Selector:
    """Holds the per-request references (proxy target, V_rebuild) so several methods share them."""

    def __init__(self, ctx: UnlearnContext) -> None:
        from mmunlearn.unlearn.tru.exact import exact_part

        self.ctx = ctx
        ref_model, _ = exact_part(ctx)
        self.target: ProxyTarget = build_targets(ref_model, ctx.applied, seed=ctx.seed)
        del ref_model
        rebuild = build_method("rebuild").run(ctx).model
        self.v_rebuild = valid_utility(rebuild, ctx.applied)
        del rebuild

    def score(self, result: UnlearnResult) -> dict[str, float]:
        pct = self.target.percentiles(result.model)
        d = abs(float(np.mean(pct)) - float(np.mean(self.target.target)))
        return {"D": d, "proxy_mean": float(np.mean(pct)), "target_mean": float(np.mean(self.target.target)),
                "V": valid_utility(result.model, self.ctx.applied), "seconds": result.seconds}

    def select(self, name: str, fixed: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any], UnlearnResult]:
        """Run the grid of ``name`` (with ``fixed`` settings held constant); return the chosen config, the
        selection report and its result."""
        candidates = []
        for cfg in grid_configs(name, fixed):
            res = build_method(name, cfg).run(self.ctx)
            sc = self.score(res)
            candidates.append((cfg, sc, res))
        chosen = choose([sc for _, sc, _ in candidates], self.v_rebuild)
        cfg, _, best_result = candidates[chosen]
        report = {"rule": f"min |proxy gap| s.t. valid NDCG@20 >= (1-{UTILITY_SLACK}) x rebuild; "
                          f"ties ({TIE}) -> valid within {V_TIE:.0%} of the best -> fastest",
                  "v_rebuild": self.v_rebuild, "chosen": chosen,
                  "grid": [{"config": {k: getattr(c, k) for k in GRIDS.get(name, {})}, **sc}
                           for c, sc, _ in candidates]}
        return cfg, report, best_result


def choose(scores: list[dict[str, float]], v_ref: float) -> int:
    """Index of the chosen candidate under the selection rule (see the module docstring)."""
    ok = [k for k, s in enumerate(scores) if s["V"] >= (1.0 - UTILITY_SLACK) * v_ref]
    if not ok:
        return int(max(range(len(scores)), key=lambda k: scores[k]["V"]))
    d_min = min(scores[k]["D"] for k in ok)
    near = [k for k in ok if scores[k]["D"] <= d_min + TIE]
    v_best = max(scores[k]["V"] for k in near)
    good = [k for k in near if scores[k]["V"] >= (1.0 - V_TIE) * v_best]
    return int(min(good, key=lambda k: scores[k]["seconds"]))


def select_config(name: str, ctx: UnlearnContext, selector: Selector | None = None) -> tuple[Any, dict[str, Any]]:
    """The selected config of ``name`` and the selection report (pass a :class:`Selector` to share the
    per-request references between methods; :meth:`Selector.select` also returns the chosen run)."""
    cfg, report, _ = (selector or Selector(ctx)).select(name)
    return cfg, report


__all__ = ["GRIDS", "Selector", "choose", "grid_configs", "select_config", "UTILITY_SLACK", "TIE", "V_TIE"]
