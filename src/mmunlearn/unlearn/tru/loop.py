"""The gated push: full passes over the pushed pairs until their mean percentile reaches the target.

Before every pass the gate weights are refreshed from the current percentiles (two-sided: positive above
the target, negative past it); the loop stops when the mean gap is within ``tol``, halves the step when
the gap changes sign, and undoes a step that made the embeddings non-finite (then retries at half the
step). Without the gate every weight is 1 and the loop runs exactly ``epochs`` passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mmunlearn.models.base import Recommender
from mmunlearn.unlearn.targets import KIND_ITEM
from mmunlearn.unlearn.tru.gate import gate_stats
from mmunlearn.unlearn.tru.plan import PushPlan, forget_loss


@dataclass
class PushState:
    """What carries over between the push phases of one call (before and after a repair)."""

    lr: float
    steps: int = 0
    stopped: str = "epochs"
    epochs: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "steps": self.steps, "stopped": self.stopped}


def gated_push(model: Recommender, plan: PushPlan, state: PushState, cfg: Any, original_train,
               rng: np.random.Generator, device: torch.device, phase: int = 0) -> None:
    """One phase of the push, in place on ``model`` (``cfg``: a ``TRUConfig``)."""
    tg, push, params, opt = plan.targets, plan.push, plan.params, plan.optimizer
    prev_gap: float | None = None
    last_good: list[torch.Tensor] | None = None
    for epoch in range(cfg.epochs + 1):
        u_emb, i_emb = model.propagate()
        if not (torch.isfinite(u_emb).all() and torch.isfinite(i_emb).all()):
            if last_good is None or state.lr < 1e-6:
                state.stopped = "diverged"
                break
            with torch.no_grad():  # a step blew up: undo it and retry with half the step
                for p, saved in zip(params, last_good, strict=True):
                    p.copy_(saved)
            state.lr *= cfg.backoff
            last_good = None
            u_emb, i_emb = model.propagate()
        r, w = plan.refresh(u_emb.detach(), i_emb.detach())
        stats = gate_stats(w[push], r, tg.target[push])
        stats.update({"epoch": epoch, "steps": state.steps, "lr": state.lr, "phase": phase})
        state.epochs.append(stats)
        if not params or not push.any():
            state.stopped = "nothing to update"
            break
        if cfg.gate:
            if abs(stats["gap"]) <= cfg.tol:
                state.stopped = "target reached"
                break
            if prev_gap is not None and np.sign(stats["gap"]) != np.sign(prev_gap):
                state.lr *= cfg.backoff
            prev_gap = stats["gap"]
        if epoch == cfg.epochs:
            break
        order = rng.permutation(plan.pushed)
        for k in range(0, len(order), cfg.batch_size):
            if k > 0:
                u_emb, i_emb = model.propagate()
            idx = order[k:k + cfg.batch_size]
            grads = step_grads(u_emb, i_emb, plan, idx, w, plan.negatives(idx, original_train, rng), device)
            last_good = [p.detach().clone() for p in params]
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            opt.set_lr(state.lr)
            opt.step(n_pairs=len(idx))
            opt.zero_grad(set_to_none=True)
            state.steps += 1


def step_grads(u_emb: torch.Tensor, i_emb: torch.Tensor, plan: PushPlan, idx: np.ndarray, w: np.ndarray,
               neg: np.ndarray, device: torch.device) -> list[torch.Tensor | None]:
    """One step's reverse gradient per active parameter, scaled per branch."""
    tg, params = plan.targets, plan.params
    if plan.items_only:  # shared weights move for fully deleted items only (isolation.py)
        m = tg.kind[idx] == KIND_ITEM
        l_items = forget_loss(u_emb, i_emb, tg, idx[m], w, neg[m], device)
        l_rest = forget_loss(u_emb, i_emb, tg, idx[~m], w, neg[~m], device)
        g_all = torch.autograd.grad(l_items + l_rest, params, retain_graph=True, allow_unused=True)
        g_items = torch.autograd.grad(l_items, params, allow_unused=True)
        # a deleted interaction is undone in its user's row, not in modules every item goes through
        g_f = [ga if table else gi for ga, gi, table in zip(g_all, g_items, plan.is_table, strict=True)]
    else:
        g_f = list(torch.autograd.grad(forget_loss(u_emb, i_emb, tg, idx, w, neg, device), params,
                                       allow_unused=True))
        if not plan.split:
            return g_f
    return [None if g is None else c * g for g, c in zip(g_f, plan.scale_of, strict=True)]


__all__ = ["PushState", "gated_push", "step_grads"]
