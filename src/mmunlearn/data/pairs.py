"""(user, item) pairs of a sparse interaction matrix: one home for the CSR ↔ pairs helpers.

Every layer needs them (requests validate pairs, samplers draw negatives, audits label members), so they
live at the bottom of the layering, in ``data/``, and nothing needs to import upwards to get them.
Membership is a binary search over sorted ``user * n_items + item`` keys: no Python loop, no dense
matrix.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def csr_pairs(mat: sp.spmatrix | sp.sparray) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) int64 arrays of the non-zeros of a sparse matrix, row-major (sorted for canonical CSR)."""
    mat = sp.csr_matrix(mat)
    users = np.repeat(np.arange(mat.shape[0], dtype=np.int64), np.diff(mat.indptr))
    return users, mat.indices.astype(np.int64)


def pair_keys(mat: sp.csr_matrix) -> np.ndarray:
    """``user * n_items + item`` keys of the non-zeros, sorted (CSR rows are in order; indices sorted here)."""
    users, items = csr_pairs(mat)
    keys = users * mat.shape[1] + items
    return keys if np.all(keys[1:] >= keys[:-1]) else np.sort(keys)


def contains(keys: np.ndarray, users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Whether each (user, item) is among ``keys`` (sorted)."""
    q = np.asarray(users, dtype=np.int64) * n_items + np.asarray(items, dtype=np.int64)
    if len(keys) == 0:
        return np.zeros(len(q), dtype=bool)
    pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
    return keys[pos] == q


def in_matrix(mat: sp.csr_matrix, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Whether each (user, item) is a non-zero of ``mat``."""
    return contains(pair_keys(mat), users, items, mat.shape[1])


__all__ = ["csr_pairs", "pair_keys", "contains", "in_matrix"]
