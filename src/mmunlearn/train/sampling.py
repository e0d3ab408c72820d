"""Vectorised BPR sampling: one shuffled pass over the training pairs with uniform negatives.

Negatives are drawn for the whole epoch at once and collisions with the user's positives are re-drawn
in vectorised rounds (membership is a binary search over sorted ``user * n_items + item`` keys), so
there is no per-sample Python loop.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from mmunlearn.data.pairs import contains, csr_pairs, pair_keys  # re-exported: the samplers' own vocabulary

_MAX_ROUNDS = 50


def sample_negatives(users: np.ndarray, positives: sp.csr_matrix, rng: np.random.Generator,
                     keys: np.ndarray | None = None) -> np.ndarray:
    """One uniform negative per user, never one of the user's positives (given a free item exists)."""
    n_items = positives.shape[1]
    keys = pair_keys(positives) if keys is None else keys
    neg = rng.integers(0, n_items, size=len(users))
    bad = contains(keys, users, neg, n_items)
    for _ in range(_MAX_ROUNDS):
        if not bad.any():
            break
        idx = np.flatnonzero(bad)
        neg[idx] = rng.integers(0, n_items, size=len(idx))
        bad[idx] = contains(keys, users[idx], neg[idx], n_items)
    return neg


def bpr_batches(train: sp.csr_matrix, batch_size: int, rng: np.random.Generator,
                ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(users, positives, negatives)`` batches covering every training pair once, shuffled."""
    users, items = csr_pairs(train)
    order = rng.permutation(len(users))
    users, items = users[order], items[order]
    negs = sample_negatives(users, train, rng)
    for start in range(0, len(users), batch_size):
        sl = slice(start, start + batch_size)
        yield users[sl], items[sl], negs[sl]


__all__ = ["csr_pairs", "pair_keys", "contains", "sample_negatives", "bpr_batches"]
