"""TRU's plan: everything decided once, before the first step — what is pushed, towards which target,
through which parameters and rows, at which branch scale, with which preconditioner.

Built from the exact part's model in a fixed order (targets → one probe forward/backward → isolation →
scaling → preconditioners), so the random stream the push draws from afterwards is the same whatever
the switches are set to. The loop (``loop.py``) only reads the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from mmunlearn.data.pairs import pair_keys
from mmunlearn.models.base import Recommender
from mmunlearn.train.sampling import sample_negatives
from mmunlearn.unlearn.base import UnlearnContext
from mmunlearn.unlearn.reverse import RetainSampler
from mmunlearn.unlearn.targets import KIND_ITEM, KIND_PAIR, KIND_USER, ProxyTarget, build_targets
from mmunlearn.unlearn.tru.gate import gate_weights
from mmunlearn.unlearn.tru.isolation import (
    ActiveSet,
    group_sensitivity,
    select_groups,
    shared_allowed,
    touched_rows,
)
from mmunlearn.unlearn.tru.optim import RowPreconditionedSGD
from mmunlearn.unlearn.tru.scaling import branch_of, branch_ratios, branch_scales


@dataclass
class PushPlan:
    targets: ProxyTarget
    push: np.ndarray  # bool per target pair: is it pushed (a reset user's pairs are exact already)
    gate_groups: np.ndarray  # the gate's grouping: each pair alone, or per deleted item / user
    original_keys: np.ndarray  # sorted pair keys of the original train: negatives avoid every original positive
    active: ActiveSet
    params: list[torch.Tensor]  # the parameters the push updates, in ``active.params`` order
    is_table: list[bool]
    scale_of: list[float]  # branch scale c_b of each active parameter's reverse gradient
    items_only: bool  # shared weights take only fully deleted items' terms (isolation.py, shared = "auto")
    optimizer: RowPreconditionedSGD
    gate: bool
    gate_scale: str
    tau: float

    @property
    def pushed(self) -> np.ndarray:
        return np.flatnonzero(self.push)

    @property
    def split(self) -> bool:
        """Whether branch scales differ from 1 (then the reverse gradient is taken on its own)."""
        return any(abs(c - 1.0) > 1e-12 for c in self.scale_of)

    def refresh(self, u_emb: torch.Tensor, i_emb: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Current percentiles of the pushed pairs and every pair's gate weight (0 where not pushed)."""
        tg, push = self.targets, self.push
        w = np.zeros(len(tg.pairs))
        r = tg.percentiles_from(u_emb, i_emb, push)
        w[push] = gate_weights(r, tg.target[push], self.tau, self.gate_groups[push], self.gate_scale) \
            if self.gate else 1.0
        return r, w

    def negatives(self, idx: np.ndarray, original_train, rng: np.random.Generator) -> np.ndarray:
        return sample_negatives(self.targets.pairs[idx, 0], original_train, rng, keys=self.original_keys)

    def describe(self) -> dict[str, Any]:
        return {"isolation": {**self.active.describe(), "shared_from_deleted_items_only": self.items_only}}


def forget_loss(u_emb: torch.Tensor, i_emb: torch.Tensor, tg: ProxyTarget, idx: np.ndarray, w: np.ndarray,
                neg: np.ndarray, device: torch.device) -> torch.Tensor:
    """Σ w · softplus(s_ui − s_uj) over pairs; item-kind pairs move only the item side."""
    t = lambda a, dt=torch.long: torch.as_tensor(a, dtype=dt, device=device)  # noqa: E731
    pu, pi, pj = t(tg.pairs[idx, 0]), t(tg.pairs[idx, 1]), t(neg)
    item_only = t(tg.kind[idx] == KIND_ITEM, torch.bool)[:, None]
    fu = u_emb[pu]
    fu = torch.where(item_only, fu.detach(), fu)
    d = (fu * i_emb[pi]).sum(-1) - (fu * i_emb[pj].detach()).sum(-1)  # the negative is a reference point
    return (t(w[idx], torch.float32) * F.softplus(d)).sum()


def build_plan(model: Recommender, ctx: UnlearnContext, cfg: Any, rng: np.random.Generator,
               log: dict[str, Any]) -> PushPlan:
    """Targets, push mask, probe, isolation, scaling and preconditioners (``cfg``: a ``TRUConfig``)."""
    device = torch.device(ctx.device)
    applied = ctx.applied
    tg = build_targets(model, applied, cfg.target_config(), seed=ctx.seed)
    log["targets"] = tg.summary()
    # a reset user *is* a fresh user: its pairs are at their target by construction
    push = tg.kind != KIND_USER if cfg.reset else np.ones(len(tg.pairs), dtype=bool)
    pushed = np.flatnonzero(push)
    gate_groups = np.where(tg.kind == KIND_PAIR, -1 - np.arange(len(tg.pairs)),
                           np.where(tg.kind == KIND_ITEM, tg.group, tg.group + applied.retain.n_items))
    named = dict(model.named_parameters())
    trainable = [n for n, p in named.items() if p.requires_grad]
    tables = model.embedding_tables()
    branches = branch_of(model)
    model.eval()  # targeted edits, not training: no dropout/sampling noise between measure and update
    plan = PushPlan(targets=tg, push=push, gate_groups=gate_groups, original_keys=pair_keys(applied.original.train),
                    active=ActiveSet(params=[]), params=[], is_table=[], scale_of=[], items_only=False,
                    optimizer=None, gate=cfg.gate, gate_scale=cfg.gate_scale,  # type: ignore[arg-type]
                    tau=cfg.logit_tau if cfg.gate_scale == "logit" else cfg.tau)

    # ----- probe: sensitivities (isolation) and branch ratios (scaling) ---------------------------------
    u_emb, i_emb = model.propagate()
    _, w = plan.refresh(u_emb.detach(), i_emb.detach())
    neg = plan.negatives(pushed, applied.original.train, rng)
    l_f = forget_loss(u_emb, i_emb, tg, pushed, w, neg, device) / max(len(pushed), 1)
    grads_f, grads_r = _probe(model, u_emb, i_emb, l_f, applied, rng, trainable, device)
    del u_emb, i_emb, l_f
    sens = group_sensitivity(grads_f, grads_r, model.parameter_groups())
    forget_users = np.unique(tg.pairs[push & (tg.kind != KIND_ITEM), 0])
    # pair-kind pairs write their item's row only with pair_rows = "both" (item-kind pairs always do)
    item_rows_from = push & ((tg.kind != KIND_PAIR) | (cfg.pair_rows == "both"))
    forget_items = np.unique(tg.pairs[item_rows_from, 1])
    if cfg.isolation:
        pgroups = model.parameter_groups()
        row_groups = {g for g, members in pgroups.items() if members and all(n in tables for n in members)}
        every_row = bool(model.items_with_rows(np.arange(applied.retain.n_items)).all())
        pushed_items = np.unique(tg.pairs[push & (tg.kind == KIND_ITEM), 1])
        rowless = bool((~model.items_with_rows(pushed_items)).any())
        shared_on = shared_allowed(cfg.shared, every_row, rowless)
        groups_on = select_groups(sens, cfg.coverage if shared_on else 0.0, row_groups)
        items_only = shared_on and cfg.shared == "auto" and not every_row
        params_on = [n for g in groups_on for n in pgroups[g]]
        users_on, items_on = touched_rows(forget_users, forget_items, applied.retain.train, cfg.row_hops)
        rows = {n: (users_on if tables[n] == "user" else items_on) for n in params_on if n in tables}
    else:
        groups_on, params_on, rows = list(model.parameter_groups()), trainable, {}
        items_only = False
    plan.active = ActiveSet(params=params_on, rows=rows, sensitivity=sens, groups=groups_on)
    plan.items_only = items_only
    # scaling shares the step out among the branches the push writes; a branch isolation left out takes
    # no share, else the mean is over ratios no update follows and a lone written branch gets c ≠ 1: a
    # pure step-size change (MIG-GT Baby interaction: c_id = 0.25 left the push short, BENCHMARKS §9r).
    # With shared weights taking only the deleted items' terms, the rows' push competes with no branch:
    # they step at 1 and take no share either.
    scaled = {n: branches.get(n, "id") for n in params_on if not (items_only and n in tables)}
    written = set(scaled.values())
    ratios = branch_ratios(grads_f, grads_r, branches)
    scales = branch_scales({b: r for b, r in ratios.items() if b in written}, cfg.c_min, cfg.c_max) \
        if cfg.scaling else {b: 1.0 for b in written}
    log.update(plan.describe())
    log["branch_ratios"], log["branch_scales"] = ratios, scales
    del grads_f, grads_r

    # ----- what the optimiser updates ------------------------------------------------------------------
    plan.params = [named[n] for n in params_on]
    plan.is_table = [n in tables for n in params_on]
    plan.scale_of = [scales[scaled[n]] if n in scaled else 1.0 for n in params_on]
    precond = _preconditioners(model, tables, params_on, cfg.precondition, rng, device) \
        if cfg.precondition > 0 else {}
    plan.optimizer = RowPreconditionedSGD(
        plan.params, lr=cfg.lr, table=plan.is_table, max_rel_step=cfg.max_rel_step,
        rows=[torch.as_tensor(rows[n], device=device) if n in rows else None for n in params_on],
        precond=[precond.get(n) for n in params_on]) if plan.params else None  # type: ignore[assignment]
    return plan


def _probe(model: Recommender, u_emb, i_emb, l_f: torch.Tensor, applied, rng, names: list[str],
           device) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per-parameter gradients of the (gated, mean) forget loss and of a retain BPR sample."""
    params = [dict(model.named_parameters())[n] for n in names]
    n_f = max(int(applied.forget.nnz), 1)
    ru, rp, rn = RetainSampler(applied.retain.train).sample(min(n_f, 16384), rng)
    t = lambda a: torch.as_tensor(a, dtype=torch.long, device=device)  # noqa: E731
    fu = u_emb[t(ru)]
    l_r = -F.logsigmoid((fu * i_emb[t(rp)]).sum(-1) - (fu * i_emb[t(rn)]).sum(-1)).mean()
    g_f = torch.autograd.grad(l_f, params, retain_graph=True, allow_unused=True)
    g_r = torch.autograd.grad(l_r, params, allow_unused=True)
    fill = lambda gs: {n: (g if g is not None else torch.zeros_like(p))  # noqa: E731
                       for n, g, p in zip(names, gs, params, strict=True)}
    return fill(g_f), fill(g_r)


@torch.no_grad()
def _preconditioners(model, tables: dict[str, str], params_on: list[str], beta: float, rng, device,
                     sample: int = 4096) -> dict[str, torch.Tensor]:
    """(I + β·H)⁻¹ per embedding table: H = E[f fᵀ] of the *other* side's final embeddings, scaled to unit
    mean eigenvalue. A row step g·(I + βH)⁻¹ keeps the direction that moves the deleted pair's score but
    damps the directions along which most other scores of that row would move."""
    u_emb, i_emb = model.final_embeddings()
    params = dict(model.named_parameters())
    out = {}
    for name in params_on:
        kind = tables.get(name)
        if kind is None or params[name].shape[1] != u_emb.shape[1]:
            continue  # only tables that live in the scoring space (not e.g. raw feature tables)
        other = i_emb if kind == "user" else u_emb
        if other.shape[0] > sample:
            other = other[torch.as_tensor(rng.choice(other.shape[0], size=sample, replace=False), device=device)]
        h = other.T @ other / other.shape[0]
        h = h / (torch.trace(h) / h.shape[0]).clamp_min(1e-12)
        out[name] = torch.linalg.inv(torch.eye(h.shape[0], device=device, dtype=h.dtype) + beta * h)
    return out


__all__ = ["PushPlan", "build_plan", "forget_loss"]
