"""Retain-side repair — give back the utility the exact part and the reverse push took.

A few BPR steps (Adam) on the retain data only, over every trainable parameter, with the model in
training mode (its dropout/sampling on), exactly like fine-tuning. Why it is safe for forgetting: the
retain data holds none of the deleted pairs, and a deleted item is drawn there only as a negative — the
direction Retrain moves it too. Why TRU needs it on some backbones: where an item is what shared modules
make of it (MIG-GT has no item ID table), both the graph rebuild (every neighbour's normalisation
changes) and the push on shared modality MLPs move every item's representation; on Baby/MIG-GT the
rebuild alone cost about a quarter of valid NDCG@20 on an item request (docs/TRU.md §6b) — most of it the
deleted items themselves flooding the rankings, which the exact part's detach now removes (§1.4), so on
item requests the repair rarely triggers there any more.

The repair is **triggered**, not always run: only when the model's valid NDCG@20 (users outside the
request) has fallen more than ``trigger`` below the original's own valid NDCG@20. Where the row-local
push leaves utility intact (MGCN, LightGCN) it costs one valid evaluation of the unlearned model (and
one of the original, unless the caller passes the original's scores: ``UnlearnContext.original_valid``)
and changes nothing; BPR
steps are not free of side effects (Adam's first steps move every coordinate), so they are not taken
where nothing needs repairing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmunlearn.evaluate.forgetting import utility_users, valid_utility
from mmunlearn.evaluate.ranking import evaluate_split
from mmunlearn.models.base import Recommender
from mmunlearn.unlearn.base import UnlearnContext
from mmunlearn.unlearn.reverse import retain_bpr_steps


def original_valid_ndcg(ctx: UnlearnContext) -> float:
    """The original's valid NDCG@20 on the users the trigger compares (users outside the request): read
    from ``ctx.original_valid`` where the caller holds the original's per-user scores, else ranked here."""
    applied = ctx.applied
    users = utility_users(applied)
    if ctx.original_valid is not None and ctx.original_valid.k == 20:
        return ctx.original_valid.mean(users)
    return float(evaluate_split(ctx.original, applied.original, "valid", ks=(20,), users=users)["ndcg@20"])


def needs_repair(model: Recommender, ctx: UnlearnContext, trigger: float,
                 v_original: float) -> tuple[bool, dict[str, float]]:
    """Whether ``model``'s valid NDCG@20 is more than ``trigger`` (relative) below ``v_original``
    (:func:`original_valid_ndcg`, computed once per unlearning call however many checks it makes)."""
    v_model = valid_utility(model, ctx.applied)
    return v_model < (1.0 - trigger) * v_original, {"valid_ndcg@20": v_model, "valid_ndcg@20_original": v_original}


def repair(model: Recommender, ctx: UnlearnContext, *, epochs: float, lr: float, batch_size: int,
           rng: np.random.Generator) -> dict[str, Any]:
    """``epochs`` of retain BPR on ``model`` in place (nothing when ``epochs`` is 0)."""
    if epochs <= 0:
        return {"steps": 0}
    return retain_bpr_steps(model, ctx.retain.train, epochs=epochs, lr=lr, batch_size=batch_size, rng=rng,
                            device=torch.device(ctx.device))


class RepairPolicy:
    """TRU's repair decisions within one unlearning call: check, and repair when past the trigger.

    The original's valid NDCG@20 is read once, on the first check (the original does not change),
    however many checks the call makes — from the context's per-user scores when the caller holds them
    (``original_from: context``), else by ranking the original's valid split (``ranked``); the repair draws from its own random stream, so the push draws the
    same negatives whether or not a repair ran. Each check is logged under its key (``repair``,
    ``closing_repair``).
    """

    def __init__(self, ctx: UnlearnContext, *, trigger: float, epochs: float, lr: float, batch_size: int,
                 rng: np.random.Generator, log: dict[str, Any]) -> None:
        self.ctx, self.trigger, self.epochs, self.lr, self.batch_size = ctx, trigger, epochs, lr, batch_size
        self.rng, self.log = rng, log
        self._v_original: float | None = None

    @property
    def enabled(self) -> bool:
        return self.epochs > 0

    def v_original(self) -> float:
        if self._v_original is None:
            self._v_original = original_valid_ndcg(self.ctx)
        return self._v_original

    def check(self, model: Recommender, key: str = "repair") -> bool:
        """Repair ``model`` in place if its utility has fallen past the trigger; True when it ran."""
        needed, measured = needs_repair(model, self.ctx, self.trigger, self.v_original())
        self.log[key] = {**measured, "ran": needed,
                         "original_from": "context" if self.ctx.original_valid is not None else "ranked"}
        if needed:
            self.log[key].update(repair(model, self.ctx, epochs=self.epochs, lr=self.lr,
                                        batch_size=self.batch_size, rng=self.rng))
        return needed


__all__ = ["RepairPolicy", "needs_repair", "original_valid_ndcg", "repair"]
