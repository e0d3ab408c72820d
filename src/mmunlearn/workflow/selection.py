"""Hyper-parameter selection: one rule for every method, using neither test nor Retrain.

The rule (docs/TRU.md §Selection):

1. **Proxy target** — built once per request from TRU's exact part (graph rebuilt, fully deleted rows
   reset, deleted items at the never-positive prior): a retrain-free target percentile for every
   deleted pair (``unlearn/targets.py``: valid pairs for deleted interactions, never-positive items for
   deleted items — or the reference a candidate's own ``item_reference`` names — fresh rows for deleted
   users), estimated on a fixed item sample.
2. For every configuration in the method's small grid, run the method and measure
   - ``D`` = |mean percentile of the deleted pairs − mean target| (same estimator), the forgetting proxy;
   - ``V`` = valid NDCG@20 on the retain data (users outside a user request).
3. A configuration is **admissible** when ``V ≥ (1 − δ) · V_rebuild`` (δ = ``UTILITY_SLACK`` = 0.10),
   ``V_rebuild`` being the valid NDCG@20 of the zero-step ``rebuild`` model. The slack is loose on
   purpose: honest forgetting costs utility (the deleted data was useful), and how much is unknown
   without Retrain; the guard only rejects destructive configurations.
4. Among admissible configurations take those within ``TIE`` (0.005) of the smallest ``D``; among
   those, the ones within ``V_TIE`` (1 %, about the sampling noise of valid NDCG@20 on Baby) of the best
   ``V``, and of these the one that did the least work (:func:`work_done`: optimiser steps and
   Hessian-vector products the call logged; then the first in the grid). If none is admissible, take the
   highest ``V``.

For a method whose searched settings act only through the work it logs (declared at registration:
``search_acts_through_work``; TRU and its variants, whose ``lr`` and ``precondition`` shape the push), a
candidate that did no work (:func:`work_done` = 0 — the exact part left nothing to push, as in a user
deletion) ends the search: the rest of the grid would return the same model, and the rule would pick the
first of equals anyway. The choice is unchanged and the report says the search stopped
(``stopped_early``); on Clothing's user regime that is one TRU run instead of four.

The last tie-break counts work instead of timing it: wall time depends on what else the machine runs, so
a timed tie-break made the same command on the same data pick another near-equal candidate from one run
to the next (docs/BENCHMARKS.md §9h). Seconds are still measured and reported.

Each method declares what is searched (``register_method(..., search=...)``); methods without
hyper-parameters (``rebuild``, ``rebuild-reset``, ``retrain``) have a one-point grid. Settings the user
fixes are held constant and dropped from the search.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import numpy as np

from mmunlearn.evaluate.forgetting import valid_utility
from mmunlearn.unlearn.base import UnlearnContext, UnlearnResult, build_method, method_config, method_spec
from mmunlearn.unlearn.targets import ProxyTarget, TargetConfig, build_targets

UTILITY_SLACK = 0.10
TIE = 0.005
V_TIE = 0.01
METRIC = "ndcg@20"
DEFAULT_ITEM_REFERENCE = TargetConfig.item_reference

def search_space(name: str, fixed: dict[str, Any] | None = None) -> dict[str, tuple[Any, ...]]:
    """What the rule tries for ``name`` (declared by the method at registration), less the ``fixed``
    settings: a setting the user fixed (``--set``, a config file) is honoured, never searched over."""
    fixed = fixed or {}
    return {k: v for k, v in method_spec(name).search.items() if k not in fixed}


def grid_configs(name: str, fixed: dict[str, Any] | None = None) -> list[Any]:
    """The configurations searched for ``name``; ``fixed`` settings (not searched) apply to all of them."""
    base = method_config(name, ("fixed settings", fixed or {}))
    grid = search_space(name, fixed)
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
        self._targets: dict[str, ProxyTarget] = {DEFAULT_ITEM_REFERENCE: self.target}
        rebuild = build_method("rebuild").run(ctx).model
        self.v_rebuild = valid_utility(rebuild, ctx.applied)
        del rebuild

    def target_for(self, cfg: Any) -> ProxyTarget:
        """The proxy target ``cfg`` is judged against: the shared one, unless the configuration names its
        own item reference (TRU's ``item_reference``) and the request deletes items. Judging a method
        that aims at the fold-pair reference by the never-positive target picked the candidate that
        missed its own target most (docs/BENCHMARKS.md §9l)."""
        from mmunlearn.unlearn.tru.exact import exact_part

        reference = getattr(cfg, "item_reference", DEFAULT_ITEM_REFERENCE)
        if reference == DEFAULT_ITEM_REFERENCE or not len(self.ctx.applied.deleted_items):
            return self.target
        if reference not in self._targets:  # the exact part again rather than a model copy held meanwhile
            ref_model, _ = exact_part(self.ctx)
            self._targets[reference] = build_targets(ref_model, self.ctx.applied,
                                                     TargetConfig(item_reference=reference), seed=self.ctx.seed)
        return self._targets[reference]

    def score(self, result: UnlearnResult, cfg: Any = None) -> dict[str, float]:
        target = self.target_for(cfg)
        pct = target.percentiles(result.model)
        d = abs(float(np.mean(pct)) - float(np.mean(target.target)))
        return {"D": d, "proxy_mean": float(np.mean(pct)), "target_mean": float(np.mean(target.target)),
                "V": valid_utility(result.model, self.ctx.applied), "work": work_done(result.log),
                "seconds": result.seconds}

    def select(self, name: str, fixed: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any], UnlearnResult]:
        """Run the grid of ``name`` (with ``fixed`` settings held constant); return the chosen config, the
        selection report and its result."""
        candidates = []
        searched = search_space(name, fixed)
        configs = grid_configs(name, fixed)
        idle_ends = method_spec(name).search_acts_through_work
        for cfg in configs:
            res = build_method(name, cfg).run(self.ctx)
            sc = self.score(res, cfg)
            candidates.append((cfg, sc, res))
            if idle_ends and sc["work"] == 0:
                break  # the searched settings never acted: every other candidate is this one (see below)
        chosen = choose([sc for _, sc, _ in candidates], self.v_rebuild)
        cfg, _, best_result = candidates[chosen]
        report = {"rule": f"min |proxy gap| s.t. valid NDCG@20 >= (1-{UTILITY_SLACK}) x rebuild; "
                          f"ties ({TIE}) -> valid within {V_TIE:.0%} of the best -> least work, first in grid",
                  "v_rebuild": self.v_rebuild, "chosen": chosen,
                  "fixed": dict(fixed or {}),
                  "grid": [{"config": {k: getattr(c, k) for k in searched}, **sc}
                           for c, sc, _ in candidates]}
        if len(candidates) < len(configs):
            report["stopped_early"] = (f"candidate {len(candidates) - 1} did no work, so its searched settings "
                                       f"never acted; the {len(configs) - len(candidates)} not run would "
                                       f"return the same model")
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
    return int(min(good, key=lambda k: (scores[k]["work"], k)))


def work_done(log: dict[str, Any]) -> int:
    """A load-free measure of what an unlearning call cost, for the selection's last tie-break.

    Counts what each method logs as its unit of work — each about one forward and backward pass of the
    model: ``steps`` at the top level (the reverse loop, NegGrad's and MMRecUn's epochs' batches) and in
    any phase logged as a mapping (TRU's ``repair`` and ``closing_repair``), and influence methods'
    ``hvp_calls``. Methods without any (``rebuild``, ``rebuild-reset``) did none.
    """
    total = int(log.get("steps", 0)) + int(log.get("hvp_calls", 0))
    for value in log.values():
        if isinstance(value, dict) and "steps" in value:
            total += int(value["steps"])
    return total


__all__ = ["search_space", "Selector", "choose", "work_done", "grid_configs", "UTILITY_SLACK", "TIE", "V_TIE"]
