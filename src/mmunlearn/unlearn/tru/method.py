"""TRU — Targeted Reverse Update, our formulation (SPEC §4; docs/TRU.md has the formulas and switches).

1. **Exact part** (``exact.py``): deep copy, graphs rebuilt without D_f, rows of fully deleted users and
   items re-initialised, deleted item rows moved to the negative-only prior.
2. **Targets** (``unlearn/targets.py``): a retrain-free rank-percentile target r* for every deleted pair.
3. **Gated reverse updates** (``gate.py``) — a few full passes over D_f with plain SGD on summed terms:
   - deleted interaction (u, i): ``w_ui · softplus(s_ui − s_uj)`` (reverse BPR against a random negative
     j that stays put);
   - fully deleted item i: the same term with the user side detached, so only the item moves (under
     Retrain it is only ever a negative), gated per item;
   - fully deleted user, only when ``reset`` is off: reverse BPR gated per user (a reset user is exact);
   w = 2σ((g(r*) − g(r))/τ) − 1, g = logit (default) or the identity, is refreshed before every step from
   the current percentiles: positive above the target (push), 0 at it, negative past it (pull back:
   two-sided). The loop stops when the pushed pairs' mean percentile is within ``tol`` of the mean
   target; the step is halved whenever that mean gap changes sign.
4. **Collateral damage**: every embedding-row step is preconditioned by (I + β·H)⁻¹, H the normalised
   second moment of the other side's final embeddings, so the push moves the deleted pair's score but few
   other scores of that row (``precondition``; ``optim.py``).
5. **Branch scaling** (``scaling.py``) multiplies the reverse gradient of each modality branch by c_b.
6. **Layer isolation** (``isolation.py``) restricts the update to the most deletion-sensitive groups and,
   inside embedding tables, to the rows D_f touches; on a backbone without item rows, shared groups
   take only the fully deleted items' terms (``shared = "auto"``).
7. **Triggered repair** (``repair.py``): if valid NDCG@20 has fallen more than ``repair_trigger`` below
   the original's, a fraction of an epoch of retain BPR, then the gated loop again (phase 1); a closing
   check repairs once more, with no push after it, if that second push took the utility back.

Without the gate (ablation ``tru-no-gate``) every weight is 1 and the loop runs exactly ``epochs`` passes.

The code follows the same parts: ``plan.py`` decides everything once (targets, push mask, probe,
isolation, scales, preconditioners), ``optim.py`` is the step, ``loop.py`` the gated push,
``repair.py`` the repair policy; :meth:`TRU._run` only sequences them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mmunlearn.config import option
from mmunlearn.errors import InputError
from mmunlearn.models.base import Recommender
from mmunlearn.unlearn.base import UnlearnContext, UnlearnMethod, register_method, seeded_rng
from mmunlearn.unlearn.targets import TargetConfig
from mmunlearn.unlearn.tru.exact import exact_part
from mmunlearn.unlearn.tru.gate import GATE_SCALES
from mmunlearn.unlearn.tru.isolation import SHARED_RULES
from mmunlearn.unlearn.tru.loop import PushState, gated_push
from mmunlearn.unlearn.tru.plan import build_plan
from mmunlearn.unlearn.tru.repair import RepairPolicy


@dataclass(frozen=True)
class TRUConfig:
    # --- switches (each ablation turns one of the first three off) ---
    gate: bool = option(True, "ranking fusion gate: two-sided weights towards the retrain-free target and "
                              "stop there (off: weight 1, exactly `epochs` passes)")
    scaling: bool = option(True, "branch-wise modality scaling of the reverse gradient")
    isolation: bool = option(True, "capacity-aware layer isolation (sensitive groups, touched rows only)")
    reset: bool = option(True, "exact part: re-initialise rows of fully deleted users/items")
    item_prior: bool = option(True, "exact part: move deleted item rows to the never-positive items' mean row")
    # --- gate and loop ---
    tau: float = option(0.05, "gate temperature when gate_scale = 'percentile' (|w| = 0.46 at |r* − r| = τ)", gt=0)
    gate_scale: str = option("logit", "scale of the gate's distance to the target: 'logit' (logit r* − logit r, "
                                      "which resolves the top of the ranking) or 'percentile' (r* − r)")
    logit_tau: float = option(0.5, "gate temperature when gate_scale = 'logit' (|w| = 0.46 one τ from the target)", gt=0)
    tol: float = option(0.005, "stop when |mean percentile − mean target| of the pushed pairs is below this", gt=0)
    lr: float = option(100.0, "SGD step on the summed per-pair terms (large because the preconditioner "
                             "damps the step by about 1/β along the directions most scores share)", gt=0)
    backoff: float = option(0.5, "multiply the step by this when the mean gap changes sign", gt=0, le=1)
    epochs: int = option(20, "maximum passes over D_f (exactly this many without the gate)", ge=0)
    batch_size: int = option(16384, "deleted pairs per step (the default is one full-batch step per pass)", gt=0)
    max_rel_step: float = option(0.02, "cap on a shared (non-table) weight's step, relative to its norm", gt=0)
    # --- retain-side repair ---
    repair_epochs: float = option(0.1, "passes of retain BPR (Adam) that give back the utility the exact part "
                                       "and the push took, after the push, which then runs again (0 = off; repair.py)", ge=0)
    repair_trigger: float = option(0.10, "repair only when valid NDCG@20 is more than this (relative) below the "
                                         "original's (0 = whenever it is below at all)", ge=0)
    repair_close: bool = option(True, "check utility once more after the push that followed a repair and, if "
                                      "it is past the trigger again, repair with no push after it")
    repair_lr: float = option(1e-3, "Adam learning rate of the repair", gt=0)
    repair_batch_size: int = option(2048, "BPR batch size of the repair", gt=0)
    precondition: float = option(100.0, "β of the score-preserving preconditioner (I + β·H)⁻¹ on embedding-row "
                                      "steps, H the normalised second moment of the other side's final "
                                      "embeddings (0 = off)", ge=0)
    # --- scaling ---
    c_min: float = option(0.25, "lower clip of the branch scale c_b", gt=0)
    c_max: float = option(2.0, "upper clip of the branch scale c_b", gt=0)
    # --- isolation ---
    coverage: float = option(0.9, "share p of total sensitivity the updated groups must cover", gt=0, le=1)
    shared: str = option("auto", "may shared (non-table) groups join the push: 'always', 'never', or 'auto' = "
                                 "unless the backbone has no item rows and no fully deleted item is pushed "
                                 "(isolation.py)")
    row_hops: int = option(0, "rings of retain-graph neighbours added to the touched embedding rows", ge=0)
    pair_rows: str = option("user", "rows a deleted interaction (pair kind) may write: 'user' its user's only "
                                    "(an item keeps most of its history when one interaction goes; its row is "
                                    "every other liker's too), or 'both' its user's and its item's (the default "
                                    "until 2026-12-07, docs/TRU.md §6d)",
                            choices=("both", "user"), acts_in=("request_pairs",))
    # --- targets ---
    item_buckets: int = option(10, "item-popularity buckets of the valid-pair reference", gt=0)
    min_user_valid: int = option(3, "users with at least this many valid pairs are their own reference", ge=0)
    valid_sample: int = option(8000, "valid pairs scored for the bucket reference (cost O(sample))", ge=0)
    rank_sample: int = option(512, "items sampled once to estimate rank percentiles (0 = all items)", ge=0)
    item_reference: str = option("never-positive", "item-kind reference and item prior: 'never-positive' "
                                                   "(natural + a held-out calibration fold), 'fold-pairs' "
                                                   "(the reference from the fold's held-out interactions, "
                                                   "for their own users; the prior as 'never-positive') "
                                                   "or 'least-popular'",
                                 acts_in=("deleted_items",))

    def __post_init__(self) -> None:
        if self.gate_scale not in GATE_SCALES:
            raise InputError(f"tru.gate_scale must be one of {list(GATE_SCALES)}, got {self.gate_scale!r}")
        if self.shared not in SHARED_RULES:
            raise InputError(f"tru.shared must be one of {list(SHARED_RULES)}, got {self.shared!r}")

    def target_config(self) -> TargetConfig:
        return TargetConfig(item_buckets=self.item_buckets, min_user_valid=self.min_user_valid,
                            valid_sample=self.valid_sample, rank_sample=self.rank_sample,
                            item_reference=self.item_reference)


class TRU(UnlearnMethod):
    name = "tru"
    config_cls = TRUConfig

    def _run(self, ctx: UnlearnContext) -> tuple[Recommender, dict[str, Any]]:
        """Exact part → plan → gated push → (if utility fell past the trigger) repair, push again →
        closing check. The push and the repair draw from separate seeded streams."""
        cfg = self.config
        device = torch.device(ctx.device)
        rng = seeded_rng(ctx, 23)
        model, log = exact_part(ctx, reset=cfg.reset, item_prior=cfg.item_prior, targets=cfg.target_config())
        repairs = RepairPolicy(ctx, trigger=cfg.repair_trigger, epochs=cfg.repair_epochs, lr=cfg.repair_lr,
                               batch_size=cfg.repair_batch_size, rng=seeded_rng(ctx, 29), log=log)
        plan = build_plan(model, ctx, cfg, rng, log)
        state = PushState(lr=cfg.lr)
        original_train = ctx.applied.original.train
        gated_push(model, plan, state, cfg, original_train, rng, device, phase=0)
        pushed_after_repair = False
        if repairs.enabled and state.stopped != "diverged" and repairs.check(model):
            # repaired: the pairs may have moved, so the gate checks them again
            pushed_after_repair = True
            gated_push(model, plan, state, cfg, original_train, rng, device, phase=1)
        # the push after a repair can take back what the repair gave (Baby/MIG-GT item request, seed 2:
        # 0.84x -> repair -> 20 more gated epochs -> 0.71x of the original's valid NDCG@20): one last check
        if cfg.repair_close and pushed_after_repair and state.stopped != "diverged":
            repairs.check(model, "closing_repair")
        log.update(state.describe())
        return model, log


#: TRU's search space: the step size and the preconditioner's strength (docs/TRU.md §Selection)
TRU_SEARCH = {"lr": [50.0, 100.0], "precondition": [100.0, 300.0]}

register_method("tru", TRU, TRUConfig, "Targeted Reverse Update: exact part + gated, scaled, isolated reverse "
                                       "updates to retrain-free rank targets",
                search=TRU_SEARCH, search_acts_through_work=True)
register_method("tru-no-gate", TRU, TRUConfig, "TRU without the ranking gate (uniform reverse weight, fixed "
                                               "epochs)", preset={"gate": False, "epochs": 3, "lr": 10.0},
                search={"lr": [10.0, 50.0], "epochs": [2, 5]})
register_method("tru-no-scaling", TRU, TRUConfig, "TRU without branch-wise modality scaling",
                preset={"scaling": False}, search=TRU_SEARCH, search_acts_through_work=True)
register_method("tru-no-isolation", TRU, TRUConfig, "TRU without layer isolation (all groups, all rows)",
                preset={"isolation": False}, search=TRU_SEARCH, search_acts_through_work=True)
register_method("tru-no-repair", TRU, TRUConfig, "TRU without the triggered retain-side repair",
                preset={"repair_epochs": 0.0}, search=TRU_SEARCH, search_acts_through_work=True)
register_method("tru-fold-pairs", TRU, TRUConfig, "TRU whose item reference is the calibration fold's held-out "
                                                  "interactions, for their own users (differs from tru only "
                                                  "on item deletions, with a fold written by holdout-items)",
                preset={"item_reference": "fold-pairs"}, search=TRU_SEARCH, search_acts_through_work=True)
register_method("tru-shared-always", TRU, TRUConfig, "TRU whose shared groups always join the push (the rule "
                                                     "before 'auto'; differs from tru only without item rows)",
                preset={"shared": "always"}, search=TRU_SEARCH, search_acts_through_work=True)
