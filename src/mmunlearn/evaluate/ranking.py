"""Vectorised full-ranking evaluation with MMRec's metric definitions.

Every item is scored for every evaluated user (no sampled candidates), in user batches so memory
stays at ``batch × n_items``. Items the user already has in the masked splits score ``-inf``.
Metrics average over users with at least one target item:

- Recall@K = hits / |targets|;  Precision@K = hits / K;  HitRate@K = 1[hits > 0]
- NDCG@K = Σ_hits 1/log2(rank+1) / Σ_{r≤min(|targets|,K)} 1/log2(r+1)
- MAP@K = Σ_hits Precision@rank / min(|targets|, K)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

DEFAULT_KS = (5, 10, 20, 50)
METRICS = ("recall", "ndcg", "precision", "map", "hit")
#: scores held at once (floats): 16 MB, a block the tuned allocator keeps mapped (``mmunlearn.runtime``).
#: Baby ranks 594 users per batch, Clothing 182; measured as fast as 4,096-user batches on Baby
SCORE_BUDGET = 2 ** 22
MAX_USER_BATCH = 4096


def user_batch_size(n_items: int) -> int:
    """Users scored per batch, so that a batch's ``[users, n_items]`` scores stay within budget."""
    return max(1, min(MAX_USER_BATCH, SCORE_BUDGET // max(n_items, 1)))


def _masked_scores(user_emb: torch.Tensor, item_emb: torch.Tensor, users: np.ndarray,
                   mask: sp.csr_matrix | None) -> torch.Tensor:
    scores = user_emb[torch.as_tensor(users, device=user_emb.device)] @ item_emb.T
    if mask is not None and mask.nnz:
        sub = mask[users]
        rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
        scores[torch.as_tensor(rows, device=scores.device),
               torch.as_tensor(sub.indices, dtype=torch.long, device=scores.device)] = -torch.inf
    return scores


def top_k(user_emb: torch.Tensor, item_emb: torch.Tensor, users: np.ndarray, k: int,
          mask: sp.csr_matrix | None = None, batch_size: int | None = None) -> np.ndarray:
    """Top-``k`` item ids per user ``[len(users), k]``, masked items excluded."""
    batch_size = batch_size or user_batch_size(item_emb.shape[0])
    out = []
    for start in range(0, len(users), batch_size):
        scores = _masked_scores(user_emb, item_emb, users[start:start + batch_size], mask)
        out.append(torch.topk(scores, k, dim=1).indices.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def metrics_from_hits(hits: np.ndarray, n_targets: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """MMRec metrics from a ``[n_users, max_k]`` 0/1 hit matrix and each user's target count."""
    max_k = hits.shape[1]
    ranks = np.arange(1, max_k + 1)
    discounts = 1.0 / np.log2(ranks + 1)
    cum_hits = np.cumsum(hits, axis=1)
    prec_at_rank = cum_hits / ranks
    out: dict[str, float] = {}
    for k in ks:
        h = hits[:, :k]
        n_hit = h.sum(1)
        ideal_len = np.minimum(n_targets, k)
        idcg = np.cumsum(discounts[:k])[ideal_len - 1]
        out[f"recall@{k}"] = float(np.mean(n_hit / n_targets))
        out[f"precision@{k}"] = float(np.mean(n_hit / k))
        out[f"hit@{k}"] = float(np.mean(n_hit > 0))
        out[f"ndcg@{k}"] = float(np.mean((h * discounts[:k]).sum(1) / idcg))
        out[f"map@{k}"] = float(np.mean((prec_at_rank[:, :k] * h).sum(1) / ideal_len))
    return out


def _hits(user_emb: torch.Tensor, item_emb: torch.Tensor, targets: sp.csr_matrix, mask: sp.csr_matrix | None,
          max_k: int, users: np.ndarray | None, batch_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Evaluated users (those with targets, within ``users``) and their top-``max_k`` hit matrix."""
    n_targets_all = np.diff(targets.indptr)
    candidates = np.flatnonzero(n_targets_all > 0)
    if users is not None:
        candidates = np.intersect1d(candidates, users)
    if len(candidates) == 0:
        return candidates, np.zeros((0, max_k))
    k_avail = min(max_k, targets.shape[1])  # tiny catalogues: ranks past n_items are misses
    batch_size = batch_size or user_batch_size(targets.shape[1])
    hit_rows = []
    for start in range(0, len(candidates), batch_size):
        batch = candidates[start:start + batch_size]
        top = top_k(user_emb, item_emb, batch, k_avail, mask, batch_size)
        sub = targets[batch]
        dense = np.zeros((len(batch), targets.shape[1]), dtype=bool)
        dense[np.repeat(np.arange(len(batch)), np.diff(sub.indptr)), sub.indices] = True
        hit_rows.append(np.take_along_axis(dense, top, axis=1))
    hits = np.concatenate(hit_rows).astype(np.float64)
    return candidates, np.pad(hits, ((0, 0), (0, max_k - k_avail)))


def rank_metrics(user_emb: torch.Tensor, item_emb: torch.Tensor, targets: sp.csr_matrix,
                 mask: sp.csr_matrix | None, ks: Sequence[int] = DEFAULT_KS,
                 users: np.ndarray | None = None, batch_size: int | None = None) -> dict[str, float]:
    """Full-ranking metrics of ``targets`` (one CSR row per user) with ``mask`` items excluded.

    ``users`` restricts evaluation (e.g. to users outside a deletion request); users without targets
    are skipped, as in MMRec.
    """
    candidates, hits = _hits(user_emb, item_emb, targets, mask, max(ks), users, batch_size)
    if len(candidates) == 0:
        return {f"{m}@{k}": float("nan") for m in METRICS for k in ks}
    out = metrics_from_hits(hits, np.diff(targets.indptr)[candidates], ks)
    out["n_users"] = float(len(candidates))
    return out


def user_ndcg(user_emb: torch.Tensor, item_emb: torch.Tensor, targets: sp.csr_matrix, mask: sp.csr_matrix | None,
              k: int = 20, users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(evaluated users, their NDCG@k): the per-user values whose mean :func:`rank_metrics` reports, for
    studies that ask *which* users a change costs."""
    candidates, hits = _hits(user_emb, item_emb, targets, mask, k, users, None)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.minimum(np.diff(targets.indptr)[candidates], k) - 1]
    return candidates, (hits * discounts).sum(1) / ideal


def split_mask(train: sp.csr_matrix, *extra: sp.csr_matrix) -> sp.csr_matrix:
    """The items to exclude when ranking: training positives plus any earlier evaluation split."""
    mask = train
    for m in extra:
        mask = mask + m
    mask = sp.csr_matrix(mask)
    mask.data[:] = 1.0
    return mask


def evaluate_split(model: torch.nn.Module, data, split: str, ks: Sequence[int] = DEFAULT_KS,
                   users: np.ndarray | None = None) -> dict[str, float]:
    """Utility of ``model`` on ``valid`` (train masked) or ``test`` (train and valid masked).

    Masking valid items at test time follows MMRec: they are known positives, not candidates.
    """
    user_emb, item_emb = model.final_embeddings()
    mask = split_mask(data.train) if split == "valid" else split_mask(data.train, data.valid)
    return rank_metrics(user_emb, item_emb, data.split(split), mask, ks, users)
