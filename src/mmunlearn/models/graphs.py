"""Graphs derived from the training matrix: the normalised U–I adjacency and item–item kNN graphs.

Everything here is sparse (scipy CSR → ``torch.sparse_csr``); no dense ``n_items × n_items`` or
``(n_users+n_items)²`` matrix is ever formed, so memory follows the number of edges.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F


def scipy_to_torch_csr(mat: sp.spmatrix, device: torch.device | str = "cpu") -> torch.Tensor:
    mat = sp.csr_matrix(mat, dtype=np.float32)
    mat.sort_indices()
    with warnings.catch_warnings():  # "CSR support is beta" is noise here
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.sparse_csr_tensor(
            torch.from_numpy(mat.indptr.astype(np.int64)),
            torch.from_numpy(mat.indices.astype(np.int64)),
            torch.from_numpy(mat.data.astype(np.float32)),
            size=mat.shape,
        )
    return tensor.to(device)


def sym_normalize(adj: sp.spmatrix) -> sp.csr_matrix:
    """D^{-1/2} A D^{-1/2}; isolated nodes keep an all-zero row instead of dividing by zero."""
    adj = sp.csr_matrix(adj, dtype=np.float32)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(deg)
    nz = deg > 0
    inv_sqrt[nz] = deg[nz] ** -0.5
    d = sp.diags(inv_sqrt)
    return sp.csr_matrix(d @ adj @ d, dtype=np.float32)


def ui_adjacency(train: sp.csr_matrix) -> sp.csr_matrix:
    """Symmetric-normalised bipartite adjacency [[0, R], [Rᵀ, 0]] of size (n_users+n_items)²."""
    r = sp.csr_matrix(train, dtype=np.float32)
    adj = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    return sym_normalize(adj)


def norm_user_item(train: sp.csr_matrix) -> sp.csr_matrix:
    """The user-side block of the normalised adjacency: D_u^{-1/2} R D_i^{-1/2}, shape [n_users, n_items]."""
    r = sp.csr_matrix(train, dtype=np.float32)
    du = np.asarray(r.sum(axis=1)).ravel()
    di = np.asarray(r.sum(axis=0)).ravel()
    with np.errstate(divide="ignore"):
        su = np.where(du > 0, du ** -0.5, 0.0).astype(np.float32)
        si = np.where(di > 0, di ** -0.5, 0.0).astype(np.float32)
    return sp.csr_matrix(sp.diags(su) @ r @ sp.diags(si), dtype=np.float32)


def csr_matmul(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``adj @ x`` for a CSR ``adj`` (no autograd), by the fastest kernel for the device.

    On CPU, ``embedding_bag`` with per-sample weights *is* a CSR × dense product (bags = rows,
    indices = columns, weights = values) and runs 4–5× faster than ``torch.sparse.mm`` on the U–I
    graphs here (Baby: 4 ms vs 14–20 ms per 64-wide product, one core). Elsewhere (CUDA: cuSPARSE)
    and for other layouts, ``torch.sparse.mm``.
    """
    if (adj.layout is torch.sparse_csr and x.device.type == "cpu" and x.dim() == 2
            and adj.dtype == x.dtype and x.dtype in (torch.float32, torch.float64)):
        crow = adj.crow_indices()
        return F.embedding_bag(adj.col_indices(), x.contiguous(), crow[:-1], mode="sum",
                               per_sample_weights=adj.values())
    return adj @ x


class _SpMM(torch.autograd.Function):
    """``adj @ x`` whose backward uses a precomputed transpose.

    torch's own CSR backward transposes the matrix on every call, which dominated training time; the
    U–I adjacency is symmetric, so its transpose is itself and backward costs one more product.
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj, ctx.adj_t = adj, adj_t
        return csr_matmul(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # the gradient is itself a product with the transpose: written through _SpMM (whose transpose
        # is ``adj``), it is differentiable again, so Hessian-vector products (create_graph) work
        if torch.is_grad_enabled():
            return None, None, _SpMM.apply(ctx.adj_t, ctx.adj, grad)
        return None, None, csr_matmul(ctx.adj_t, grad)


def spmm(adj: torch.Tensor, x: torch.Tensor, adj_t: torch.Tensor | None = None) -> torch.Tensor:
    """Sparse × dense with a cheap backward; ``adj_t=None`` declares ``adj`` symmetric."""
    return _SpMM.apply(adj, adj if adj_t is None else adj_t, x)


class _MeanPropagation(torch.autograd.Function):
    """``(x + A·x + … + A^L·x) / (L + 1)`` for a symmetric ``A``, as one autograd node.

    The LightGCN layer mean. Built from :func:`spmm` and ``+``, autograd keeps every layer output
    and runs one add and one divide per layer and their backwards, each a full
    ``[n_nodes, d]`` pass: half of a LightGCN step on Baby was these. The gradient of the mean
    is the same mean applied to the incoming gradient (``A`` is its own transpose), so forward and
    backward are each ``L`` products accumulated in place.
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor, n_layers: int) -> torch.Tensor:
        ctx.adj, ctx.n_layers = adj, n_layers
        return _layer_mean(adj, x, n_layers)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # linear and self-adjoint: under create_graph the backward is the same node again, so it can be
        # differentiated twice (influence functions' Hessian-vector products); otherwise the fast path
        if torch.is_grad_enabled():
            return None, _MeanPropagation.apply(ctx.adj, grad, ctx.n_layers), None
        return None, _layer_mean(ctx.adj, grad, ctx.n_layers), None


def _layer_mean(adj: torch.Tensor, x: torch.Tensor, n_layers: int) -> torch.Tensor:
    acc = x.clone()
    h = x
    for _ in range(n_layers):
        h = csr_matmul(adj, h)
        acc.add_(h)
    return acc.div_(n_layers + 1)


def mean_propagation(adj: torch.Tensor, x: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Mean of ``x, A·x, …, A^L·x`` over a *symmetric* sparse ``adj`` (differentiable in ``x``)."""
    return _MeanPropagation.apply(adj, x, n_layers)


# ----- helpers for graphs with a precomputed transpose -----------------------------------------


def transpose_csr(mat: sp.spmatrix) -> sp.csr_matrix:
    """``matᵀ`` as canonical CSR (sorted indices), ready for :func:`scipy_to_torch_csr`."""
    out = sp.csr_matrix(sp.csr_matrix(mat, dtype=np.float32).T)
    out.sort_indices()
    return out


def transpose_permutation(mat: sp.spmatrix) -> np.ndarray:
    """Positions such that ``csr(matᵀ).data == csr(mat).data[perm]`` for a matrix of symmetric pattern.

    Lets a caller that masks the values of a symmetric-pattern graph (edge dropout) get the masked
    transpose by a gather instead of a sparse transpose every step.
    """
    m = sp.csr_matrix(mat, dtype=np.float32)
    m.sort_indices()
    pos = sp.csr_matrix((np.arange(m.nnz, dtype=np.float64) + 1.0, m.indices, m.indptr), shape=m.shape)
    t = sp.csr_matrix(pos.T)
    t.sort_indices()
    if t.nnz != m.nnz or not (np.array_equal(t.indptr, m.indptr) and np.array_equal(t.indices, m.indices)):
        raise ValueError("transpose_permutation needs a matrix whose sparsity pattern is symmetric")
    return (t.data - 1.0).astype(np.int64)


def ui_adjacency_self_loops(train: sp.csr_matrix) -> sp.csr_matrix:
    """Sym-normalised ``[[I, R], [Rᵀ, I]]``: the U–I graph with a self-loop on every node.

    MGDCF/MIG-GT propagate over this graph (a node keeps part of its own signal at every hop, and
    cold nodes keep a degree of 1 instead of vanishing).
    """
    r = sp.csr_matrix(train, dtype=np.float32)
    n = r.shape[0] + r.shape[1]
    adj = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32) + sp.identity(n, np.float32, "csr")
    return sym_normalize(adj)


# ----- item–item kNN graphs on content ----------------------------------------------------------


def knn_neighbours(features: np.ndarray, k: int = 10, block: int = 1024) -> np.ndarray:
    """Top-``k`` cosine neighbours of every row (the row itself included), ``[n, k]`` int64.

    Computed ``block`` rows at a time, so memory is ``block × n`` similarities, never ``n × n``.
    Rows with an all-zero feature vector (missing content) have no meaningful similarity: they get
    ``-1`` (no neighbours) and are never anyone's neighbour.
    """
    with warnings.catch_warnings():  # content is memory-mapped read-only; x is only ever read here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))  # no copy if float32
    n = x.shape[0]
    if k < 1:
        raise ValueError(f"knn k must be >= 1, got {k}")
    k = min(k, n)
    norms = x.norm(dim=1)
    empty = norms == 0
    inv_col = torch.where(empty, torch.zeros_like(norms), 1.0 / norms.clamp_min(1e-30))
    out = np.full((n, k), -1, dtype=np.int64)
    for start in range(0, n, block):
        # a row's ranking is unchanged by its own norm, so only columns are normalised: no
        # normalised copy of the features (377 MB for Clothing's images) is ever made
        sim = (x[start:start + block] @ x.T).mul_(inv_col)
        if empty.any():
            sim[:, empty] = -torch.inf
        out[start:start + block] = torch.topk(sim, k, dim=1, sorted=True).indices.numpy()
    out[empty.numpy()] = -1
    return out


def knn_adjacency(neighbours: np.ndarray, n: int, symmetric: bool = True) -> sp.csr_matrix:
    """Binary kNN adjacency from :func:`knn_neighbours`; ``symmetric`` takes the union ``A ∨ Aᵀ``."""
    rows = np.repeat(np.arange(n), neighbours.shape[1])
    cols = neighbours.ravel()
    keep = cols >= 0
    adj = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], cols[keep])), shape=(n, n))
    adj.sum_duplicates()
    adj.data[:] = 1.0
    if symmetric:
        adj = adj.maximum(adj.T).tocsr()
    adj.sort_indices()
    return adj


def knn_item_graph(features: np.ndarray, k: int = 10, block: int = 1024, symmetric: bool = True) -> sp.csr_matrix:
    """Normalised item–item kNN graph on raw content, as MGCN/LATTICE build it.

    Cosine similarity of L2-normalised rows, top-``k`` per item (the item itself included, as in
    MGCN), binary edges, then ``D^{-1/2} A D^{-1/2}`` with row-sum degrees. ``symmetric=True``
    (default) first symmetrises the kNN relation (union), so the graph is its own transpose;
    ``symmetric=False`` keeps MGCN's directed graph (every row has ``k`` edges, weight ``1/k``).
    """
    n = int(features.shape[0])
    return sym_normalize(knn_adjacency(knn_neighbours(features, k, block), n, symmetric))


def drop_items(graph: sp.csr_matrix, items: np.ndarray) -> sp.csr_matrix:
    """Remove every edge of ``items`` from a normalised binary item–item graph and re-normalise.

    Item unlearning: a deleted item must not pass content to its neighbours (nor receive it). The
    kNN relation itself is built on public content, so the remaining edges stay as they were; only
    the degrees change. The graph's binary structure is recovered from its non-zero pattern.
    """
    items = np.asarray(items, dtype=np.int64)
    adj = sp.csr_matrix(graph, dtype=np.float32, copy=True)
    adj.data[:] = 1.0
    if len(items):
        keep = np.ones(adj.shape[0], dtype=np.float32)
        keep[items] = 0.0
        mask = sp.diags(keep)
        adj = sp.csr_matrix(mask @ adj @ mask)
        adj.eliminate_zeros()
    adj.sort_indices()
    return sym_normalize(adj)


def array_fingerprint(values: np.ndarray) -> str:
    """SHA-256 of an array's shape, dtype and bytes: the content key of graph caches."""
    h = hashlib.sha256()
    arr = np.ascontiguousarray(values)
    h.update(f"{arr.shape}:{arr.dtype}".encode())
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


_KNN_CACHE: OrderedDict[tuple[str, int, bool], sp.csr_matrix] = OrderedDict()
_KNN_CACHE_SIZE = 8


def cached_knn_item_graph(features: np.ndarray, k: int = 10, symmetric: bool = True,
                          fingerprint: str | None = None, cache_dir: str | Path | None = None) -> sp.csr_matrix:
    """:func:`knn_item_graph` memoised by (content fingerprint, k, symmetric).

    The kNN graph costs one ``n × n × d`` similarity pass (about a minute for 23k items × 4096 on
    two cores) and depends only on content, so the original model, Retrain and every unlearned
    copy share it. In memory always (small LRU); on disk under ``cache_dir`` when given, as an
    ``.npz`` named by the key. Callers must not modify the returned matrix.
    """
    fp = fingerprint or array_fingerprint(features)
    key = (fp, int(k), bool(symmetric))
    if key in _KNN_CACHE:
        _KNN_CACHE.move_to_end(key)
        return _KNN_CACHE[key]
    path = Path(cache_dir) / f"knn-{fp[:32]}-k{k}-{'sym' if symmetric else 'dir'}.npz" if cache_dir else None
    if path is not None and path.is_file():
        graph = sp.csr_matrix(sp.load_npz(path), dtype=np.float32)
    else:
        graph = knn_item_graph(features, k=k, symmetric=symmetric)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            sp.save_npz(tmp, graph)
            tmp.replace(path)
    _KNN_CACHE[key] = graph
    while len(_KNN_CACHE) > _KNN_CACHE_SIZE:
        _KNN_CACHE.popitem(last=False)
    return graph
