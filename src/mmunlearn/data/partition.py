"""Partitions of the users or items into K shards, for sharded exact unlearning (SISA, RecEraser).

``random``: a seeded uniform assignment of users (SISA, Bourtoule et al. 2021) — balanced in count,
blind to the data. ``user`` / ``item``: RecEraser's balanced partition (Chen et al., WWW 2022): K
anchors, every id is assigned to its nearest anchor that still has room (capacity ⌈n/K⌉, pairs taken
in order of distance), anchors move to the mean of their members, repeated. RecEraser clusters
embeddings of a pre-trained model; here the embedding is a truncated SVD of the training matrix
(the interactions' own low-rank structure), so partitioning needs no pre-trained model and is a pure
function of (train, seed). Similar users (or items) land in the same shard, so a shard model sees
coherent neighbourhoods — that is what RecEraser's partition buys over random shards.

The assignment is computed once, on the data the sharded model is first trained on, and then kept:
a deletion never moves an id to another shard (that would touch every shard).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from mmunlearn.errors import InputError

PARTITIONS = ("random", "user", "item")


def partition_axis(partition: str) -> str:
    """Which ids a partition assigns: ``"user"`` (random, user) or ``"item"`` (item)."""
    if partition not in PARTITIONS:
        raise InputError(f"--partition {partition!r}: expected one of {', '.join(PARTITIONS)}")
    return "item" if partition == "item" else "user"


def random_partition(n: int, k: int, seed: int) -> np.ndarray:
    """A seeded balanced random assignment of ``n`` ids to ``k`` shards (sizes differ by at most one)."""
    rng = np.random.default_rng([seed, 4241])
    shard = np.arange(n, dtype=np.int64) % k
    return shard[rng.permutation(n)]


def svd_embedding(train: sp.csr_matrix, axis: str, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Rows of ``U·√S`` (users) or ``V·√S`` (items) of a rank-``dim`` truncated SVD of ``train``."""
    mat = sp.csr_matrix(train, dtype=np.float64)
    rank = max(1, min(dim, min(mat.shape) - 1))
    u, s, vt = svds(mat, k=rank, random_state=seed)
    emb = (u if axis == "user" else vt.T) * np.sqrt(s)[None, :]
    return emb.astype(np.float64)


def balanced_partition(emb: np.ndarray, k: int, seed: int, iters: int = 10) -> np.ndarray:
    """RecEraser's balanced anchor assignment of the rows of ``emb`` to ``k`` shards of ⌈n/k⌉ at most."""
    n = len(emb)
    rng = np.random.default_rng([seed, 7817])
    anchors = emb[rng.choice(n, size=k, replace=False)]
    cap = -(-n // k)
    shard = np.full(n, -1, dtype=np.int64)
    for _ in range(iters):
        shard = _capacitated_assign(((emb[:, None, :] - anchors[None, :, :]) ** 2).sum(-1), cap)
        new = np.stack([emb[shard == c].mean(0) if (shard == c).any() else anchors[c] for c in range(k)])
        if np.allclose(new, anchors):
            break
        anchors = new
    return shard


def _capacitated_assign(dist: np.ndarray, cap: int) -> np.ndarray:
    """Nearest anchor with room, in rounds: every unassigned id proposes to its nearest open anchor and
    each anchor keeps its closest proposers up to its remaining room (at most k rounds, vectorised)."""
    n, k = dist.shape
    shard = np.full(n, -1, dtype=np.int64)
    room = np.full(k, cap, dtype=np.int64)
    for _ in range(k + 1):
        todo = np.flatnonzero(shard < 0)
        if len(todo) == 0:
            break
        d = np.where(room[None, :] > 0, dist[todo], np.inf)
        choice = d.argmin(1)
        best = d[np.arange(len(todo)), choice]
        order = np.lexsort((best, choice))  # by anchor, then distance
        ranked_choice = choice[order]
        starts = np.searchsorted(ranked_choice, np.arange(k))
        rank_in_anchor = np.arange(len(order)) - starts[ranked_choice]
        accept = rank_in_anchor < room[ranked_choice]
        shard[todo[order[accept]]] = ranked_choice[accept]
        room -= np.bincount(ranked_choice[accept], minlength=k)
    return shard


def make_partition(train: sp.csr_matrix, partition: str, k: int, seed: int) -> np.ndarray:
    """The shard of every user (``random``, ``user``) or item (``item``) of ``train``."""
    axis = partition_axis(partition)
    n = train.shape[0] if axis == "user" else train.shape[1]
    if not 1 <= k <= n:
        raise InputError(f"--shards {k}: must be in 1..{n} (the number of {axis}s)")
    if partition == "random" or k == 1:
        return random_partition(n, k, seed)
    return balanced_partition(svd_embedding(train, axis, seed=seed), k, seed)


def shard_mask(shard_of: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(shard_of == k, dtype=np.float64)


def restrict(mat: sp.csr_matrix, shard_of: np.ndarray, k: int, axis: str) -> sp.csr_matrix:
    """The pairs of ``mat`` whose user (``axis='user'``) or item (``'item'``) is in shard ``k``."""
    diag = sp.diags(shard_mask(shard_of, k))
    out = (diag @ mat) if axis == "user" else (mat @ diag)
    out = sp.csr_matrix(out)
    out.eliminate_zeros()
    return out


def membership(train: sp.csr_matrix, shard_of: np.ndarray, k: int, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """``[n_users, k]`` and ``[n_items, k]`` booleans: does the id have training pairs in shard j?"""
    users = np.repeat(np.arange(train.shape[0]), np.diff(train.indptr))
    items = train.indices
    pair_shard = shard_of[users] if axis == "user" else shard_of[items]
    mu = np.zeros((train.shape[0], k), dtype=bool)
    mi = np.zeros((train.shape[1], k), dtype=bool)
    mu[users, pair_shard] = True
    mi[items, pair_shard] = True
    return mu, mi


def shards_touched(forget: sp.csr_matrix, shard_of: np.ndarray, axis: str) -> list[int]:
    """The shards that hold at least one deleted pair (the only ones a deletion must retrain)."""
    forget = sp.csr_matrix(forget)
    users = np.repeat(np.arange(forget.shape[0]), np.diff(forget.indptr))
    ids = users if axis == "user" else forget.indices
    return sorted({int(s) for s in np.unique(shard_of[ids])}) if len(ids) else []


__all__ = ["PARTITIONS", "partition_axis", "make_partition", "random_partition", "balanced_partition",
           "svd_embedding", "restrict", "membership", "shards_touched"]
