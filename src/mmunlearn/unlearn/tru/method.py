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
   other scores of that row (``precondition``); optional score anchoring holds the touched rows' other
   scores at their start values (``anchor_weight``, off by default: stiff).
5. **Branch scaling** (``scaling.py``) multiplies the reverse gradient of each modality branch by c_b.
6. **Layer isolation** (``isolation.py``) restricts the update to the most deletion-sensitive groups and,
   inside embedding tables, to the rows D_f touches; on a backbone without item rows, shared groups
   take only the fully deleted items' terms (``shared = "auto"``).
7. **Triggered repair** (``repair.py``): if valid NDCG@20 has fallen more than ``repair_trigger`` below
   the original's, a fraction of an epoch of retain BPR, then the gated loop again (phase 1); a closing
   check repairs once more, with no push after it, if that second push took the utility back.

Without the gate (ablation ``tru-no-gate``) every weight is 1 and the loop runs exactly ``epochs`` passes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from mmunlearn.config import option
from mmunlearn.errors import InputError
from mmunlearn.models.base import Recommender
from mmunlearn.train.sampling import pair_keys, sample_negatives
from mmunlearn.unlearn.base import UnlearnContext, UnlearnMethod, register_method, seeded_rng
from mmunlearn.unlearn.reverse import RetainSampler
from mmunlearn.unlearn.targets import (
    KIND_ITEM,
    KIND_PAIR,
    KIND_USER,
    ProxyTarget,
    TargetConfig,
    build_targets,
)
from mmunlearn.unlearn.tru.exact import exact_part
from mmunlearn.unlearn.tru.gate import GATE_SCALES, gate_stats, gate_weights
from mmunlearn.unlearn.tru.isolation import (
    SHARED_RULES,
    ActiveSet,
    group_sensitivity,
    select_groups,
    shared_allowed,
    touched_rows,
)
from mmunlearn.unlearn.tru.repair import REPAIR_AT, needs_repair, original_valid_ndcg, repair
from mmunlearn.unlearn.tru.scaling import branch_of, branch_ratios, branch_scales


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
    tau: float = option(0.05, "gate temperature when gate_scale = 'percentile' (|w| = 0.46 at |r* − r| = τ)")
    gate_scale: str = option("logit", "scale of the gate's distance to the target: 'logit' (logit r* − logit r, "
                                      "which resolves the top of the ranking) or 'percentile' (r* − r)")
    logit_tau: float = option(0.5, "gate temperature when gate_scale = 'logit' (|w| = 0.46 one τ from the target)")
    tol: float = option(0.005, "stop when |mean percentile − mean target| of the pushed pairs is below this")
    lr: float = option(100.0, "SGD step on the summed per-pair terms (large because the preconditioner "
                             "damps the step by about 1/β along the directions most scores share)")
    backoff: float = option(0.5, "multiply the step by this when the mean gap changes sign")
    epochs: int = option(20, "maximum passes over D_f (exactly this many without the gate)")
    batch_size: int = option(16384, "deleted pairs per step (the default is one full-batch step per pass)")
    max_rel_step: float = option(0.02, "cap on a shared (non-table) weight's step, relative to its norm")
    # --- retain-side repair ---
    repair_epochs: float = option(0.1, "passes of retain BPR (Adam) that give back the utility the exact part "
                                       "and the push took (0 = off; repair.py)")
    repair_at: str = option("after", "when to repair: 'before' the push (after the exact part) or 'after' it "
                                     "(then the gated loop runs again from where the repair left the pairs)")
    repair_trigger: float = option(0.10, "repair only when valid NDCG@20 is more than this (relative) below the "
                                         "original's (0 = whenever it is below at all)")
    repair_close: bool = option(True, "check utility once more after the last push that followed a check and, if "
                                      "it is still past the trigger, repair with no push after it")
    repair_lr: float = option(1e-3, "Adam learning rate of the repair")
    repair_batch_size: int = option(2048, "BPR batch size of the repair")
    # --- anchoring ---
    anchor_weight: float = option(0.0, "weight of score anchoring: touched users'/items' scores on sampled "
                                       "non-deleted items/users stay at their start values (squared error)")
    anchor_sample: int = option(512, "items (users) sampled once per touched user (item) for anchoring")
    precondition: float = option(100.0, "β of the score-preserving preconditioner (I + β·H)⁻¹ on embedding-row "
                                      "steps, H the normalised second moment of the other side's final "
                                      "embeddings (0 = off)")
    # --- scaling ---
    c_min: float = option(0.25, "lower clip of the branch scale c_b")
    c_max: float = option(2.0, "upper clip of the branch scale c_b")
    # --- isolation ---
    coverage: float = option(0.9, "share p of total sensitivity the updated groups must cover")
    shared: str = option("auto", "may shared (non-table) groups join the push: 'always', 'never', or 'auto' = "
                                 "unless the backbone has no item rows and no fully deleted item is pushed "
                                 "(isolation.py)")
    row_hops: int = option(0, "rings of retain-graph neighbours added to the touched embedding rows")
    # --- targets ---
    item_buckets: int = option(10, "item-popularity buckets of the valid-pair reference")
    min_user_valid: int = option(3, "users with at least this many valid pairs are their own reference")
    valid_sample: int = option(8000, "valid pairs scored for the bucket reference (cost O(sample))")
    rank_sample: int = option(512, "items sampled once to estimate rank percentiles (0 = all items)")
    item_reference: str = option("never-positive", "item-kind reference and item prior: 'never-positive' "
                                                   "(natural + a held-out calibration fold) or 'least-popular'")

    def __post_init__(self) -> None:
        if self.gate_scale not in GATE_SCALES:
            raise InputError(f"tru.gate_scale must be one of {list(GATE_SCALES)}, got {self.gate_scale!r}")
        if self.shared not in SHARED_RULES:
            raise InputError(f"tru.shared must be one of {list(SHARED_RULES)}, got {self.shared!r}")
        if self.repair_at not in REPAIR_AT:
            raise InputError(f"tru.repair_at must be one of {list(REPAIR_AT)}, got {self.repair_at!r}")

    def target_config(self) -> TargetConfig:
        return TargetConfig(item_buckets=self.item_buckets, min_user_valid=self.min_user_valid,
                            valid_sample=self.valid_sample, rank_sample=self.rank_sample,
                            item_reference=self.item_reference)


class TRU(UnlearnMethod):
    name = "tru"
    config_cls = TRUConfig

    @staticmethod
    def _forget_loss(u_emb, i_emb, tg: ProxyTarget, idx: np.ndarray, w: np.ndarray, neg: np.ndarray,
                     device) -> torch.Tensor:
        """Σ w · softplus(s_ui − s_uj) over pairs; item-kind pairs move only the item side."""
        t = lambda a, dt=torch.long: torch.as_tensor(a, dtype=dt, device=device)  # noqa: E731
        pu, pi, pj = t(tg.pairs[idx, 0]), t(tg.pairs[idx, 1]), t(neg)
        item_only = t(tg.kind[idx] == KIND_ITEM, torch.bool)[:, None]
        fu = u_emb[pu]
        fu = torch.where(item_only, fu.detach(), fu)
        d = (fu * i_emb[pi]).sum(-1) - (fu * i_emb[pj].detach()).sum(-1)  # the negative is a reference point
        return (t(w[idx], torch.float32) * F.softplus(d)).sum()

    def _run(self, ctx: UnlearnContext) -> tuple[Recommender, dict[str, Any]]:
        cfg = self.config
        device = torch.device(ctx.device)
        rng = seeded_rng(ctx, 23)
        model, log = exact_part(ctx, reset=cfg.reset, item_prior=cfg.item_prior, targets=cfg.target_config())
        applied = ctx.applied
        repair_rng = seeded_rng(ctx, 29)  # its own stream: the push draws the same negatives either way

        @functools.cache
        def v_original() -> float:  # the original does not change: one evaluation for every check
            return original_valid_ndcg(ctx)

        def run_repair(key: str = "repair") -> bool:
            """Repair if utility has fallen past the trigger; True when it ran."""
            needed, check = needs_repair(model, ctx, cfg.repair_trigger, v_original())
            log[key] = {**check, "ran": needed}
            if needed:
                log[key].update(repair(model, ctx, epochs=cfg.repair_epochs, lr=cfg.repair_lr,
                                       batch_size=cfg.repair_batch_size, rng=repair_rng))
            return needed

        # True once the gated push runs after a utility check (the closing check's condition)
        checked_then_pushed = cfg.repair_epochs > 0 and cfg.repair_at == "before"
        if checked_then_pushed:
            run_repair()
        tg = build_targets(model, applied, cfg.target_config(), seed=ctx.seed)
        log["targets"] = tg.summary()
        # a reset user *is* a fresh user: its pairs are at their target by construction
        push = tg.kind != KIND_USER if cfg.reset else np.ones(len(tg.pairs), dtype=bool)
        pushed = np.flatnonzero(push)
        groups = np.where(tg.kind == KIND_PAIR, -1 - np.arange(len(tg.pairs)),
                          np.where(tg.kind == KIND_ITEM, tg.group, tg.group + applied.retain.n_items))
        orig_keys = pair_keys(applied.original.train)
        named = dict(model.named_parameters())
        trainable = [n for n, p in named.items() if p.requires_grad]
        tables = model.embedding_tables()
        branches = branch_of(model)
        model.eval()  # targeted edits, not training: no dropout/sampling noise between measure and update

        tau = cfg.logit_tau if cfg.gate_scale == "logit" else cfg.tau

        def refresh(u_emb, i_emb) -> tuple[np.ndarray, np.ndarray]:
            w = np.zeros(len(tg.pairs))
            r = tg.percentiles_from(u_emb, i_emb, push)
            w[push] = gate_weights(r, tg.target[push], tau, groups[push], cfg.gate_scale) if cfg.gate else 1.0
            return r, w

        def negatives(idx: np.ndarray) -> np.ndarray:
            return sample_negatives(tg.pairs[idx, 0], applied.original.train, rng, keys=orig_keys)

        # ----- probe: sensitivities (isolation) and branch ratios (scaling) -------------------------
        u_emb, i_emb = model.propagate()
        r, w = refresh(u_emb.detach(), i_emb.detach())
        l_f = self._forget_loss(u_emb, i_emb, tg, pushed, w, negatives(pushed), device) / max(len(pushed), 1)
        grads_f, grads_r = self._probe(model, u_emb, i_emb, l_f, applied, rng, trainable, device)
        del u_emb, i_emb, l_f
        sens = group_sensitivity(grads_f, grads_r, model.parameter_groups())
        forget_users = np.unique(tg.pairs[push & (tg.kind != KIND_ITEM), 0])
        forget_items = np.unique(tg.pairs[push, 1])
        if cfg.isolation:
            pgroups = model.parameter_groups()
            row_groups = {g for g, members in pgroups.items() if members and all(n in tables for n in members)}
            shared_on = shared_allowed(cfg.shared, tables, bool((tg.kind[push] == KIND_ITEM).any()))
            groups_on = select_groups(sens, cfg.coverage if shared_on else 0.0, row_groups)
            items_only = shared_on and cfg.shared == "auto" and "item" not in tables.values()
            params_on = [n for g in groups_on for n in pgroups[g]]
            users_on, items_on = touched_rows(forget_users, forget_items, applied.retain.train, cfg.row_hops)
            rows = {n: (users_on if tables[n] == "user" else items_on) for n in params_on if n in tables}
        else:
            groups_on, params_on, rows = list(model.parameter_groups()), trainable, {}
            items_only = False
        active = ActiveSet(params=params_on, rows=rows, sensitivity=sens, groups=groups_on)
        ratios = branch_ratios(grads_f, grads_r, branches)
        scales = branch_scales(ratios, cfg.c_min, cfg.c_max) if cfg.scaling else {b: 1.0 for b in ratios}
        log["isolation"] = {**active.describe(), "shared_from_deleted_items_only": items_only}
        log["branch_ratios"], log["branch_scales"] = ratios, scales
        del grads_f, grads_r

        anchor = _Anchor.build(model, tg, applied, params_on, tables, cfg.anchor_sample, rng, device) \
            if cfg.anchor_weight > 0 and params_on and push.any() else None
        if anchor is not None:
            log["anchor"] = anchor.describe()

        # ----- the updates -----------------------------------------------------------------------------
        active_params = [named[n] for n in params_on]
        # with shared weights taking only the deleted items' terms, the rows' push competes with no branch:
        # scaling it by c_b (ratios of gradients the rows never share) would only shrink or grow its step
        scale_of = [1.0 if items_only and n in tables else scales.get(branches.get(n, "id"), 1.0)
                    for n in params_on]
        row_idx = [torch.as_tensor(rows[n], device=device) if n in rows else None for n in params_on]
        is_table = [n in tables for n in params_on]
        precond = _preconditioners(model, tables, params_on, cfg.precondition, rng, device) \
            if cfg.precondition > 0 else {}
        pre_of = [precond.get(n) for n in params_on]
        split = any(abs(c - 1.0) > 1e-12 for c in scale_of)
        epochs_log: list[dict[str, Any]] = []
        steps, stopped, lr, prev_gap = 0, "epochs", cfg.lr, None
        last_good: list[torch.Tensor] | None = None
        phases = 2 if cfg.repair_epochs > 0 and cfg.repair_at == "after" else 1
        for phase in range(phases):
            if phase == 1:  # repaired: the pairs may have moved, so the gate checks them again
                if stopped == "diverged" or not run_repair():
                    break
                checked_then_pushed, prev_gap, last_good = True, None, None
            for epoch in range(cfg.epochs + 1):
                u_emb, i_emb = model.propagate()
                if not (torch.isfinite(u_emb).all() and torch.isfinite(i_emb).all()):
                    if last_good is None or lr < 1e-6:
                        stopped = "diverged"
                        break
                    with torch.no_grad():  # a step blew up: undo it and retry with half the step
                        for p, saved in zip(active_params, last_good, strict=True):
                            p.copy_(saved)
                    lr *= cfg.backoff
                    last_good = None
                    u_emb, i_emb = model.propagate()
                r, w = refresh(u_emb.detach(), i_emb.detach())
                stats = gate_stats(w[push], r, tg.target[push])
                stats.update({"epoch": epoch, "steps": steps, "lr": lr, "phase": phase})
                epochs_log.append(stats)
                if not active_params or not push.any():
                    stopped = "nothing to update"
                    break
                if cfg.gate:
                    if abs(stats["gap"]) <= cfg.tol:
                        stopped = "target reached"
                        break
                    if prev_gap is not None and np.sign(stats["gap"]) != np.sign(prev_gap):
                        lr *= cfg.backoff
                    prev_gap = stats["gap"]
                if epoch == cfg.epochs:
                    break
                order = rng.permutation(pushed)
                for k in range(0, len(order), cfg.batch_size):
                    if k > 0:
                        u_emb, i_emb = model.propagate()
                    idx = order[k:k + cfg.batch_size]
                    l_a = cfg.anchor_weight * anchor.loss(u_emb, i_emb) if anchor is not None else None
                    grads = self._step_grads(u_emb, i_emb, tg, idx, w, negatives(idx), device, active_params,
                                             is_table, scale_of, l_a, items_only=items_only, split=split)
                    last_good = [p.detach().clone() for p in active_params]
                    _apply_step(active_params, grads, row_idx, is_table, pre_of, lr, len(idx), cfg.max_rel_step)
                    steps += 1
        # the push after a repair can take back what the repair gave (Baby/MIG-GT item request, seed 2:
        # 0.84x -> repair -> 20 more gated epochs -> 0.71x of the original's valid NDCG@20): one last check
        if cfg.repair_close and checked_then_pushed and stopped != "diverged":
            run_repair("closing_repair")
        log.update({"epochs": epochs_log, "steps": steps, "stopped": stopped})
        return model, log

    def _step_grads(self, u_emb, i_emb, tg: ProxyTarget, idx: np.ndarray, w: np.ndarray, neg: np.ndarray, device,
                    params: list[torch.Tensor], is_table: list[bool], scale_of: list[float],
                    l_a: torch.Tensor | None, *, items_only: bool, split: bool) -> list[torch.Tensor | None]:
        """One step's gradient per active parameter: the reverse part scaled per branch, the anchor's not."""
        if items_only:  # shared weights move for fully deleted items only (isolation.py)
            g_f = self._items_only_grads(u_emb, i_emb, tg, idx, w, neg, device, params, is_table,
                                         keep_graph=l_a is not None)
        else:
            l_f = self._forget_loss(u_emb, i_emb, tg, idx, w, neg, device)
            if not split:
                return list(torch.autograd.grad(l_f if l_a is None else l_f + l_a, params, allow_unused=True))
            g_f = torch.autograd.grad(l_f, params, retain_graph=l_a is not None, allow_unused=True)
        g_a = torch.autograd.grad(l_a, params, allow_unused=True) if l_a is not None else [None] * len(params)
        return [_combine(gf, ga, c) for gf, ga, c in zip(g_f, g_a, scale_of, strict=True)]

    def _items_only_grads(self, u_emb, i_emb, tg: ProxyTarget, idx: np.ndarray, w: np.ndarray, neg: np.ndarray,
                          device, params: list[torch.Tensor], is_table: list[bool],
                          keep_graph: bool) -> list[torch.Tensor | None]:
        """Forget gradients where embedding tables get every pair's term but shared weights only the fully
        deleted items' terms: a deleted interaction is undone in its user's row, not in modules every item
        goes through."""
        m = tg.kind[idx] == KIND_ITEM
        l_items = self._forget_loss(u_emb, i_emb, tg, idx[m], w, neg[m], device)
        l_rest = self._forget_loss(u_emb, i_emb, tg, idx[~m], w, neg[~m], device)
        g_all = torch.autograd.grad(l_items + l_rest, params, retain_graph=True, allow_unused=True)
        g_items = torch.autograd.grad(l_items, params, retain_graph=keep_graph, allow_unused=True)
        return [ga if table else gi for ga, gi, table in zip(g_all, g_items, is_table, strict=True)]

    def _probe(self, model: Recommender, u_emb, i_emb, l_f: torch.Tensor, applied, rng, names: list[str],
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


@torch.no_grad()
def _apply_step(params: list[torch.Tensor], grads, row_idx: list[torch.Tensor | None], is_table: list[bool],
                pre_of: list[torch.Tensor | None], lr: float, n_pairs: int, max_rel_step: float) -> None:
    """One SGD step: preconditioned rows for tables (only the touched rows), a capped step for shared weights.

    A shared (dense) weight gets every pair's term while an embedding row only gets its own pairs': the
    summed terms are averaged for shared weights, and their step is capped at ``max_rel_step`` of the
    weight's norm (a trust region, as in LARS).
    """
    for p, g, ridx, table, pre in zip(params, grads, row_idx, is_table, pre_of, strict=True):
        if g is None:
            continue
        if pre is not None:
            g = g @ pre
        if not table:
            step = (lr / max(n_pairs, 1)) * g
            cap = max_rel_step * float(p.norm()) / (float(step.norm()) + 1e-12)
            p.sub_(step * min(1.0, cap))
        elif ridx is None:
            p.sub_(lr * g)
        elif len(ridx):
            p[ridx] -= lr * g[ridx]


def _combine(gf, ga, scale: float):
    if gf is None and ga is None:
        return None
    out = torch.zeros_like(gf if gf is not None else ga)
    if gf is not None:
        out += scale * gf
    if ga is not None:
        out += ga
    return out


@dataclass
class _Anchor:
    """Score anchoring: the touched users' scores on a fixed item sample (and the touched items' scores
    for a fixed user sample) keep their start values, except on the deleted pairs themselves.

    ``mean_j (s_uj − s⁰_uj)²`` per anchored row, summed over rows: the reverse push may only move the
    deleted pair's score, not the rest of the user's ranking — what Retrain leaves unchanged too.
    """

    users: torch.Tensor
    items_for_users: torch.Tensor
    s0_users: torch.Tensor
    mask_users: torch.Tensor
    items: torch.Tensor
    users_for_items: torch.Tensor
    s0_items: torch.Tensor
    mask_items: torch.Tensor

    @classmethod
    @torch.no_grad()
    def build(cls, model, tg: ProxyTarget, applied, params_on: list[str], tables: dict[str, str], m: int,
              rng: np.random.Generator, device) -> _Anchor | None:
        u_emb, i_emb = model.final_embeddings()
        kinds_pair = tg.kind == KIND_PAIR
        on_user = any(tables.get(n) == "user" for n in params_on)
        on_item = any(tables.get(n) == "item" for n in params_on)
        users = np.unique(tg.pairs[kinds_pair, 0]) if on_user else np.zeros(0, np.int64)
        items = np.unique(tg.pairs[kinds_pair, 1]) if on_item else np.zeros(0, np.int64)
        if len(users) == 0 and len(items) == 0:
            return None
        n_items = applied.retain.n_items
        cand_i = np.sort(rng.choice(n_items, size=min(m, n_items), replace=False))
        alive = np.flatnonzero(np.diff(applied.retain.train.indptr) > 0)
        cand_u = np.sort(rng.choice(alive, size=min(m, len(alive)), replace=False))
        fkeys = np.sort(tg.pairs[:, 0] * n_items + tg.pairs[:, 1])

        def block(rows_u, cols_i):
            s0 = u_emb[torch.as_tensor(rows_u, device=device)] @ i_emb[torch.as_tensor(cols_i, device=device)].T
            return s0

        from mmunlearn.train.sampling import contains

        s0_u = block(users, cand_i) if len(users) else torch.zeros(0, len(cand_i), device=device)
        mu = ~contains(fkeys, np.repeat(users, len(cand_i)), np.tile(cand_i, len(users)), n_items)
        s0_i = block(cand_u, items).T.contiguous() if len(items) else torch.zeros(0, len(cand_u), device=device)
        mi = ~contains(fkeys, np.tile(cand_u, len(items)), np.repeat(items, len(cand_u)), n_items)
        t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
        return cls(users=t(users), items_for_users=t(cand_i), s0_users=s0_u,
                   mask_users=t(mu.reshape(len(users), len(cand_i)).astype(np.float32)),
                   items=t(items), users_for_items=t(cand_u), s0_items=s0_i,
                   mask_items=t(mi.reshape(len(items), len(cand_u)).astype(np.float32)))

    def loss(self, u_emb: torch.Tensor, i_emb: torch.Tensor) -> torch.Tensor:
        total = u_emb.sum() * 0.0
        if len(self.users):
            s = u_emb[self.users] @ i_emb[self.items_for_users].detach().T  # anchors the user rows only
            total = total + ((s - self.s0_users).pow(2) * self.mask_users).mean(1).sum()
        if len(self.items):
            s = (u_emb[self.users_for_items].detach() @ i_emb[self.items].T).T  # anchors the item rows only
            total = total + ((s - self.s0_items).pow(2) * self.mask_items).mean(1).sum()
        return total

    def describe(self) -> dict[str, int]:
        return {"users": int(len(self.users)), "items": int(len(self.items)),
                "items_per_user": int(len(self.items_for_users)), "users_per_item": int(len(self.users_for_items))}


register_method("tru", TRU, TRUConfig, "Targeted Reverse Update: exact part + gated, scaled, isolated reverse "
                                       "updates to retrain-free rank targets")
register_method("tru-no-gate", TRU, TRUConfig, "TRU without the ranking gate (uniform reverse weight, fixed "
                                               "epochs)", preset={"gate": False, "epochs": 3, "lr": 10.0})
register_method("tru-no-scaling", TRU, TRUConfig, "TRU without branch-wise modality scaling",
                preset={"scaling": False})
register_method("tru-no-isolation", TRU, TRUConfig, "TRU without layer isolation (all groups, all rows)",
                preset={"isolation": False})
register_method("tru-no-repair", TRU, TRUConfig, "TRU without the triggered retain-side repair",
                preset={"repair_epochs": 0.0})
register_method("tru-shared-always", TRU, TRUConfig, "TRU whose shared groups always join the push (the rule "
                                                     "before 'auto'; differs from tru only without item rows)",
                preset={"shared": "always"})
