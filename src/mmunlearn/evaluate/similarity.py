"""Representation and ranking similarity between two models: linear CKA and top-K overlap.

Both are *audits*, not forgetting metrics: an unlearned model is compared with Retrain, and the
number only means something beside the same number for a second-seed Retrain (SPEC §4/§5: a
second-seed Retrain scores CKA 0.80–0.91 on Baby, no higher than doing nothing). Report them as
``(method vs Retrain, Retrain seed 2 vs Retrain)`` pairs; a method inside that noise is a tie.

Linear CKA (Kornblith et al., ICML 2019) compares two embedding tables of the same rows
(users or items) up to an orthogonal transform and isotropic scaling of the columns — exactly the
freedom two independently trained embedding models have, so it can compare a method with Retrain
although their coordinates are unrelated. It is computed from ``d × d`` Gram products (``YᵀX``,
``XᵀX``, ``YᵀY``) in float64, never from ``n × n`` kernels, so it costs ``O(n d²)`` and memory
``O(d²)`` on any number of rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from mmunlearn.evaluate.ranking import top_k

if TYPE_CHECKING:  # evaluate/ sits below models/ in the layering: annotations only
    from mmunlearn.models.base import Recommender

ArrayLike = np.ndarray | torch.Tensor


def _as_float64(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D [n, d] matrix, got shape {arr.shape}")
    return arr


def linear_cka(x: ArrayLike, y: ArrayLike) -> float:
    """Linear CKA ``‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)`` of column-centred ``x [n, d1]`` and ``y [n, d2]``.

    Rows must correspond (row k of both is the same user/item); widths may differ. Returns a value in
    ``[0, 1]``, 1 when ``y`` is an orthogonal transform times a scalar of ``x``. ``nan`` when either
    matrix is constant (CKA is undefined: nothing to compare).
    """
    a, b = _as_float64(x), _as_float64(y)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"CKA needs the same rows in both matrices, got {a.shape[0]} and {b.shape[0]}")
    a = a - a.mean(axis=0, keepdims=True)
    b = b - b.mean(axis=0, keepdims=True)
    cross = np.linalg.norm(b.T @ a, ord="fro") ** 2
    den = np.linalg.norm(a.T @ a, ord="fro") * np.linalg.norm(b.T @ b, ord="fro")
    if den <= 0.0 or not np.isfinite(den):
        return float("nan")
    return float(min(max(cross / den, 0.0), 1.0))


def embedding_cka(model_a: Recommender, model_b: Recommender, *, users: np.ndarray | None = None,
                  items: np.ndarray | None = None) -> dict[str, float]:
    """Linear CKA of the final user and item embeddings of two models (same id space).

    ``users``/``items`` restrict the comparison to a subset of rows — e.g. the retained users, since
    the rows of deleted users are *meant* to differ from the original's and would otherwise dominate.
    """
    ua, ia = model_a.final_embeddings()
    ub, ib = model_b.final_embeddings()
    if ua.shape[0] != ub.shape[0] or ia.shape[0] != ib.shape[0]:
        raise ValueError("models must share the id space (same n_users and n_items)")
    if users is not None:
        idx = torch.as_tensor(np.asarray(users, dtype=np.int64))
        ua, ub = ua.cpu()[idx], ub.cpu()[idx]
    if items is not None:
        idx = torch.as_tensor(np.asarray(items, dtype=np.int64))
        ia, ib = ia.cpu()[idx], ib.cpu()[idx]
    return {"user": linear_cka(ua, ub), "item": linear_cka(ia, ib)}


def jaccard_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Jaccard ``|A∩B| / |A∪B|`` of two ``[n, k]`` id lists (ids distinct within a row).

    Vectorised through an ``[n, k, k]`` equality test, cheap for the k ≤ 100 of ranking audits.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"lists must have the same rows, got {a.shape} and {b.shape}")
    if a.shape[1] == 0 and b.shape[1] == 0:
        return np.ones(a.shape[0])
    inter = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)
    union = a.shape[1] + b.shape[1] - inter
    return inter / union


def topk_overlap(model_a: Recommender, model_b: Recommender, users: np.ndarray,
                 mask: sp.csr_matrix | None, k: int = 20, mask_b: sp.csr_matrix | None = None) -> float:
    """Mean Jaccard of the two models' top-``k`` lists over ``users``.

    ``mask`` holds the items excluded from ranking (normally the retained training positives, via
    :func:`~mmunlearn.evaluate.ranking.split_mask`); ``mask_b`` defaults to ``mask``, so both models
    rank the same candidates — otherwise the overlap would measure the masks, not the models.
    """
    users = np.asarray(users, dtype=np.int64)
    if len(users) == 0:
        return float("nan")
    ua, ia = model_a.final_embeddings()
    ub, ib = model_b.final_embeddings()
    top_a = top_k(ua, ia, users, k, mask)
    top_b = top_k(ub, ib, users, k, mask if mask_b is None else mask_b)
    return float(jaccard_rows(top_a, top_b).mean())
