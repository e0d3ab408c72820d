"""Forgetting metrics: where a model ranks the deleted pairs, compared with the retrained reference.

Definitions (SPEC §4–§5):

- **rank percentile** of a pair (u, i) = share of u's candidates scoring *strictly* higher than i, where
  the candidates are all items minus u's *retained* training positives (the deleted item itself is a
  candidate); normalised by ``|candidates| − 1`` so 0 = top and 1 = bottom;
- **mean percentile** of the deleted pairs, its **signed gap** to Retrain (method − retrain; negative =
  under-forgetting: the pairs still rank higher than a retrained model ranks them; positive =
  over-forgetting: ranked lower, itself a membership signal), and the two-sample **KS** distance between
  the method's and Retrain's percentile distributions;
- **forget Recall@20 / NDCG@20**: the deleted pairs treated as targets, scored without masking them
  (only retained training positives are masked);
- **utility**: test metrics on the retain data (train and valid masked) for users outside a user request.

Everything is vectorised in user/pair batches; memory stays at ``batch × n_items``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.stats import ks_2samp

from mmunlearn.evaluate.ranking import evaluate_split, rank_metrics, split_mask, user_ndcg

FORGET_KS = (10, 20)
UTILITY_KS = (10, 20)


@torch.no_grad()
def rank_percentiles(user_emb: torch.Tensor, item_emb: torch.Tensor, pairs: np.ndarray,
                     exclude: sp.csr_matrix | None, batch_pairs: int = 2048,
                     candidates: np.ndarray | None = None) -> np.ndarray:
    """Rank percentile of each ``(user, item)`` row of ``pairs`` among the user's candidates.

    ``exclude`` holds each user's retained training positives (not candidates). A pair's own item must
    not be excluded. Ties count as not higher, so a pair tied with everything sits at the top (0).
    ``candidates`` (sorted item ids) estimates the percentile on that item sample instead of all items —
    an unbiased estimate at a fraction of the cost (TRU's gate uses one fixed sample throughout).
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    out = np.empty(len(pairs), dtype=np.float64)
    if len(pairs) == 0:
        return out
    n_items = item_emb.shape[0]
    device = user_emb.device
    in_cand = np.ones(n_items, dtype=bool)
    cand_emb = item_emb
    if candidates is not None:
        in_cand = np.zeros(n_items, dtype=bool)
        in_cand[candidates] = True
        cand_emb = item_emb[torch.as_tensor(candidates, device=device)]
    n_cand = int(cand_emb.shape[0])
    exclude = sp.csr_matrix(exclude) if exclude is not None else None
    pos_of = np.cumsum(in_cand) - 1  # item id -> column in the candidate score matrix
    for start in range(0, len(pairs), batch_pairs):
        chunk = pairs[start:start + batch_pairs]
        u = user_emb[torch.as_tensor(chunk[:, 0], device=device)]
        own = (u * item_emb[torch.as_tensor(chunk[:, 1], device=device)]).sum(-1)
        scores = u @ cand_emb.T
        gt = (scores - own[:, None]).gt_(0)
        higher = gt.sum(1).cpu().numpy().astype(np.int64)
        denom = np.full(len(chunk), n_cand, dtype=np.int64)
        # the pair's own item and the excluded items among the candidates are not counted; read their
        # comparison from the same matrix so rounding can never count an item twice or not at all
        rows = np.arange(len(chunk))
        items = chunk[:, 1]
        if exclude is not None and exclude.nnz:
            sub = exclude[chunk[:, 0]]
            rows = np.concatenate([rows, np.repeat(np.arange(len(chunk)), np.diff(sub.indptr))])
            items = np.concatenate([items, sub.indices.astype(np.int64)])
        keep = in_cand[items]
        rows, items = rows[keep], items[keep]
        if len(rows):
            above = gt[torch.as_tensor(rows, device=device),
                       torch.as_tensor(pos_of[items], device=device)].cpu().numpy() > 0
            higher -= np.bincount(rows[above], minlength=len(chunk))
            denom -= np.bincount(rows, minlength=len(chunk))
        out[start:start + len(chunk)] = higher / np.maximum(denom, 1)
    return out


def model_percentiles(model: torch.nn.Module, pairs: np.ndarray, exclude: sp.csr_matrix | None) -> np.ndarray:
    user_emb, item_emb = model.final_embeddings()
    return rank_percentiles(user_emb, item_emb, pairs, exclude)


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov statistic (0 = same distribution, 1 = disjoint)."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(ks_2samp(a, b).statistic)


def proxy_distance(percentiles: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Retrain-free forgetting proxy: how far the forget pairs' percentiles are from the proxy target.

    ``gap`` = mean(percentiles) − mean(target) (signed, like the gap to Retrain), ``abs_gap`` its
    magnitude, ``ks`` the KS distance between the two distributions.
    """
    gap = float(np.mean(percentiles) - np.mean(target))
    return {"gap": gap, "abs_gap": abs(gap), "ks": ks_distance(percentiles, target),
            "mean": float(np.mean(percentiles)), "target_mean": float(np.mean(target))}


def utility_users(applied: Any) -> np.ndarray | None:
    """Users whose utility is measured: everyone outside a user request (``None`` = all users)."""
    if len(applied.request.users) == 0:
        return None
    keep = np.ones(applied.retain.n_users, dtype=bool)
    keep[applied.request.users] = False
    return np.flatnonzero(keep)


def valid_utility(model: torch.nn.Module, applied: Any, metric: str = "ndcg@20") -> float:
    """Validation utility on the retain data (users outside a user request): what selection may look at."""
    k = int(metric.split("@")[1])
    return float(evaluate_split(model, applied.retain, "valid", ks=(k,), users=utility_users(applied))[metric])


@dataclass(frozen=True)
class UserValidNDCG:
    """A model's valid NDCG@k per user (users with valid targets, ascending), so that any user subset's
    mean is one lookup: the mean :func:`evaluate_split` reports for that subset, without ranking again.

    Why it exists: TRU's repair trigger compares the unlearned model's valid utility with the *original's*
    on the users outside the request. The original is the deployed model, scored on valid once when it
    was trained; ranking every user again inside each unlearning call cost a third of TRU's CPU time on
    Baby x LightGCN (docs/BENCHMARKS.md §9k).
    """

    users: np.ndarray
    ndcg: np.ndarray
    k: int = 20

    def mean(self, users: np.ndarray | None = None) -> float:
        """Mean over the evaluated users within ``users`` (all of them when ``None``), NaN when none."""
        values = self.ndcg if users is None else self.ndcg[np.isin(self.users, users)]
        return float(np.mean(values)) if len(values) else float("nan")


@torch.no_grad()
def user_valid_ndcg(model: torch.nn.Module, data: Any, k: int = 20) -> UserValidNDCG:
    """Per-user valid NDCG@k of ``model`` on ``data`` (train masked), as :func:`evaluate_split` ranks it."""
    user_emb, item_emb = model.final_embeddings()
    users, ndcg = user_ndcg(user_emb, item_emb, data.split("valid"), split_mask(data.train), k=k)
    return UserValidNDCG(users=np.asarray(users), ndcg=np.asarray(ndcg, dtype=np.float64), k=k)


@dataclass
class ForgetEval:
    """Everything measured on one model for one applied request."""

    percentiles: np.ndarray
    forget: dict[str, float]
    utility: dict[str, float]
    valid: dict[str, float] = field(default_factory=dict)

    @property
    def mean_percentile(self) -> float:
        return float(np.mean(self.percentiles))


def evaluate_forgetting(model: torch.nn.Module, applied: Any, *, utility_ks: Sequence[int] = UTILITY_KS,
                        with_valid: bool = False) -> ForgetEval:
    """Deleted-pair percentiles, forget Recall/NDCG (unmasked), and test utility outside the request."""
    user_emb, item_emb = model.final_embeddings()
    retain = applied.retain
    pct = rank_percentiles(user_emb, item_emb, applied.forget_pairs, retain.train)
    forget = rank_metrics(user_emb, item_emb, applied.forget, retain.train, ks=FORGET_KS)
    users = utility_users(applied)
    utility = evaluate_split(model, retain, "test", ks=utility_ks, users=users)
    valid = evaluate_split(model, retain, "valid", ks=utility_ks, users=users) if with_valid else {}
    return ForgetEval(percentiles=pct, forget=forget, utility=utility, valid=valid)


def result_row(method: str, ev: ForgetEval, *, retrain: ForgetEval, noise: ForgetEval | None = None,
               seconds: float, retrain_seconds: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One table row for ``method``: utility, forgetting vs Retrain, the noise floor, cost.

    ``noise`` is a second Retrain with another seed: its gap/KS to the first Retrain is the noise floor,
    and a method whose |gap| is below it ties with Retrain (``within_noise``).
    """
    gap = ev.mean_percentile - retrain.mean_percentile
    row: dict[str, Any] = {
        "method": method,
        "recall@20": ev.utility.get("recall@20"),
        "ndcg@20": ev.utility.get("ndcg@20"),
        "recall@10": ev.utility.get("recall@10"),
        "ndcg@10": ev.utility.get("ndcg@10"),
        "ndcg@20_vs_retrain": _ratio(ev.utility.get("ndcg@20"), retrain.utility.get("ndcg@20")),
        "forget_pct_mean": ev.mean_percentile,
        "retrain_pct_mean": retrain.mean_percentile,
        "gap": gap,
        "ks": ks_distance(ev.percentiles, retrain.percentiles),
        "forget_recall@20": ev.forget.get("recall@20"),
        "forget_ndcg@20": ev.forget.get("ndcg@20"),
        "seconds": float(seconds),
        "speedup": float(retrain_seconds / seconds) if seconds > 0 else float("inf"),
    }
    if noise is not None:
        noise_gap = noise.mean_percentile - retrain.mean_percentile
        row["noise_gap"] = noise_gap
        row["noise_ks"] = ks_distance(noise.percentiles, retrain.percentiles)
        row["within_noise"] = bool(abs(gap) <= abs(noise_gap))
    if ev.valid:
        row["valid_recall@20"] = ev.valid.get("recall@20")
        row["valid_ndcg@20"] = ev.valid.get("ndcg@20")
    if extra:
        row.update(extra)
    return row


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b:
        return None
    return float(a / b)


__all__ = ["rank_percentiles", "model_percentiles", "ks_distance", "proxy_distance", "utility_users", "valid_utility",
           "UserValidNDCG", "user_valid_ndcg", "ForgetEval", "evaluate_forgetting", "result_row"]
