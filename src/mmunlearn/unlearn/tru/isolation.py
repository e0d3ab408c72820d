"""Capacity-aware layer isolation — touch only what carries the deletion.

Per named parameter group ℓ (the backbone's ``parameter_groups()``), on probe batches:

    S_ℓ = mean(g_f²) / (mean(g_r²) + ε)

(g_f: gradient of the gated forget loss, g_r: of the retain BPR loss; means over the group's entries).
Groups made only of embedding tables are updated whenever S_ℓ > 0, restricted to the touched rows
(below); the shared groups are ranked by S_ℓ and the *smallest* set whose sensitivities add up to a
fraction ``p`` of the shared total is updated; every other group is frozen (not even read by the
optimiser: bit-identical). Inside embedding tables (``embedding_tables()``) only the rows the deletion touched are updated — the
users and items of D_f, plus ``hops`` rings of retain-graph neighbours — so the update's cost and its
footprint follow |D_f|, not the table size (TRU's SGD keeps no optimiser state at all).

Isolation governs the *push*. TRU's triggered repair (``repair.py``), when it runs, is ordinary BPR on the
retain data over every parameter, so after a repair only the guarantee "no deleted pair was trained on"
holds, not bit-identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch


@dataclass
class ActiveSet:
    """What TRU may update: parameter names, and for embedding tables the row indices."""

    params: list[str]
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    sensitivity: dict[str, float] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {"groups": list(self.groups), "sensitivity": dict(self.sensitivity),
                "rows": {k: int(len(v)) for k, v in self.rows.items()}}


def group_sensitivity(grads_f: dict[str, torch.Tensor], grads_r: dict[str, torch.Tensor],
                      groups: dict[str, list[str]], eps: float = 1e-20) -> dict[str, float]:
    out: dict[str, float] = {}
    for gname, members in groups.items():
        num = sum(float(grads_f[n].double().pow(2).sum()) for n in members if n in grads_f)
        den = sum(float(grads_r[n].double().pow(2).sum()) for n in members if n in grads_r)
        size = sum(int(grads_f[n].numel()) for n in members if n in grads_f) or 1
        out[gname] = (num / size) / (den / size + eps)
    return out


def select_groups(sensitivity: dict[str, float], coverage: float,
                  row_groups: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Row-restricted groups the deletion reaches, plus the smallest set of shared groups (by decreasing
    S) whose S adds up to ``coverage`` of the shared groups' total.

    ``row_groups`` are groups made only of embedding tables. Their update is already confined to the
    rows D_f touches, which hold the deleted data and are nobody else's, so each one with S > 0 is
    updated whatever its rank. Ranking them against shared modules instead lets a few gates whose
    gradients are large relative to the retain loss's (MGCN's preference gates and purifiers) crowd out
    the ID rows, and the update then moves only capped shared weights: on Baby/MGCN's interaction
    request it did not move the deleted pairs at all (docs/TRU.md §6).
    """
    finite = {k: v for k, v in sensitivity.items() if np.isfinite(v)}
    rows = [k for k, v in finite.items() if k in row_groups and v > 0]
    shared = {k: v for k, v in finite.items() if k not in row_groups}
    total = sum(shared.values())
    chosen, acc = [], 0.0
    if total > 0:
        for name, value in sorted(shared.items(), key=lambda kv: -kv[1]):
            if acc >= coverage * total - 1e-12:
                break
            chosen.append(name)
            acc += value
    return sorted(rows, key=lambda k: -finite[k]) + chosen


SHARED_RULES = ("auto", "always", "never")


def shared_allowed(rule: str, every_item_has_row: bool, rowless_items_pushed: bool) -> bool:
    """Whether shared (non-table) groups may join the push under ``rule``.

    ``auto``: yes, unless some items have no row of their own (``every_item_has_row`` false) and no
    pushed item lacks one. Where an item is what shared modules make of it (MIG-GT: no item ID rows;
    items come from propagation and the modality MLPs), every shared step moves every item's
    representation, while a deleted interaction can be undone in its user's row alone: on
    Baby/MIG-GT's interaction request (grid seed 0, docs/BENCHMARKS.md §3.3) pushing through the
    modality MLPs ended 0.086 short of Retrain's percentile at 0.88x its test NDCG@20, the user rows
    (shared modules taking only the 3 fully deleted items' terms) 0.029 short at 0.98x. A fully deleted
    item that the exact part detached onto a row of its own (MIG-GT's ``reset_rows``) needs no shared
    module either; one without a row (``reset`` off) does. With item rows for every item (MGCN,
    LightGCN) the coverage rule decides, as before.
    """
    if rule == "always":
        return True
    if rule == "never":
        return False
    return every_item_has_row or rowless_items_pushed


def touched_rows(forget_users: np.ndarray, forget_items: np.ndarray, retain_train: sp.csr_matrix,
                 hops: int) -> tuple[np.ndarray, np.ndarray]:
    """Users/items of D_f plus ``hops`` rings of neighbours in the retain graph."""
    users, items = np.unique(forget_users), np.unique(forget_items)
    csc = retain_train.tocsc()
    for _ in range(max(hops, 0)):
        new_items = np.unique(retain_train[users].indices) if len(users) else np.zeros(0, np.int64)
        new_users = np.unique(csc[:, items].indices) if len(items) else np.zeros(0, np.int64)
        users = np.union1d(users, new_users)
        items = np.union1d(items, new_items)
    return users.astype(np.int64), items.astype(np.int64)


__all__ = ["SHARED_RULES", "ActiveSet", "group_sensitivity", "select_groups", "shared_allowed", "touched_rows"]
