"""Item–item kNN graphs, item dropping, transposes and the cached graph builder."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmunlearn.models import graphs as G


def brute_force_knn(x: np.ndarray, k: int, symmetric: bool) -> np.ndarray:
    """Dense reference: cosine top-k (self included), binary, optional union, D^-1/2 A D^-1/2."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    nbrs = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    a = np.zeros_like(sim)
    a[np.repeat(np.arange(len(x)), k), nbrs.ravel()] = 1.0
    if symmetric:
        a = np.maximum(a, a.T)
    d = a.sum(1)
    return a / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("block", [7, 64, 1024])
def test_knn_blockwise_equals_brute_force(symmetric: bool, block: int) -> None:
    x = np.random.default_rng(0).standard_normal((150, 12)).astype(np.float32)
    got = G.knn_item_graph(x, k=5, block=block, symmetric=symmetric)
    np.testing.assert_allclose(got.toarray(), brute_force_knn(x, 5, symmetric), atol=1e-6)


def test_knn_graph_is_symmetric_and_includes_self() -> None:
    x = np.random.default_rng(1).standard_normal((200, 8)).astype(np.float32)
    g = G.knn_item_graph(x, k=10)
    assert abs(g - g.T).max() < 1e-7
    assert (g.diagonal() > 0).all()
    directed = G.knn_item_graph(x, k=10, symmetric=False)
    np.testing.assert_allclose(np.diff(directed.indptr), 10)
    np.testing.assert_allclose(directed.data, 0.1, rtol=1e-6)  # MGCN's graph: every edge 1/k


def test_knn_zero_rows_get_no_edges() -> None:
    x = np.random.default_rng(2).standard_normal((50, 6)).astype(np.float32)
    x[[3, 17]] = 0.0
    g = G.knn_item_graph(x, k=4)
    assert g[[3, 17]].nnz == 0 and g[:, [3, 17]].nnz == 0
    assert np.isfinite(g.data).all()


def test_knn_large_is_blockwise_and_sparse() -> None:
    x = np.random.default_rng(3).standard_normal((20_000, 16)).astype(np.float32)
    t0 = time.perf_counter()
    g = G.knn_item_graph(x, k=10, block=1024)
    assert time.perf_counter() - t0 < 60  # a few seconds in practice; 20k² floats would be 1.6 GB
    assert sp.issparse(g) and g.shape == (20_000, 20_000)
    assert 10 * 20_000 <= g.nnz <= 2 * 10 * 20_000


def test_drop_items_removes_edges_and_renormalises() -> None:
    x = np.random.default_rng(4).standard_normal((80, 6)).astype(np.float32)
    g = G.knn_item_graph(x, k=6)
    gone = np.array([0, 5, 41])
    dropped = G.drop_items(g, gone)
    assert dropped[gone].nnz == 0 and dropped[:, gone].nnz == 0
    a = (g.toarray() > 0).astype(float)
    keep = np.ones(80, bool)
    keep[gone] = False
    a[~keep] = 0
    a[:, ~keep] = 0
    d = a.sum(1)
    ref = np.where(d[:, None] * d[None, :] > 0, a / np.sqrt(np.outer(d, d) + (d[:, None] * d[None, :] == 0)), 0)
    np.testing.assert_allclose(dropped.toarray(), ref, atol=1e-6)
    np.testing.assert_allclose(G.drop_items(g, np.array([], dtype=np.int64)).toarray(), g.toarray(), atol=1e-7)


def test_transpose_permutation_gives_the_transpose_values() -> None:
    rng = np.random.default_rng(5)
    a = sp.random(30, 30, density=0.2, random_state=6, format="csr", dtype=np.float32)
    a = a + a.T  # symmetric pattern
    a.data = rng.random(a.nnz).astype(np.float32)  # asymmetric values
    a = sp.csr_matrix(a)
    a.sort_indices()
    perm = G.transpose_permutation(a)
    t = G.transpose_csr(a)
    np.testing.assert_array_equal(t.data, a.data[perm])
    with pytest.raises(ValueError):
        G.transpose_permutation(sp.csr_matrix(np.triu(np.ones((4, 4), np.float32), 1)))


def test_ui_adjacency_self_loops_is_normalised() -> None:
    r = sp.csr_matrix(np.array([[1, 0, 1], [0, 0, 1]], dtype=np.float32))
    adj = G.ui_adjacency_self_loops(r).toarray()
    a = np.zeros((5, 5))
    a[:2, 2:] = r.toarray()
    a[2:, :2] = r.toarray().T
    a += np.eye(5)
    d = a.sum(1)
    np.testing.assert_allclose(adj, a / np.sqrt(np.outer(d, d)), atol=1e-6)


def test_spmm_with_transpose_matches_dense_gradient() -> None:
    a = sp.random(20, 15, density=0.3, random_state=7, format="csr", dtype=np.float32)
    adj, adj_t = G.scipy_to_torch_csr(a), G.scipy_to_torch_csr(G.transpose_csr(a))
    x = torch.randn(15, 4, requires_grad=True)
    w = torch.randn(20, 4)
    (G.spmm(adj, x, adj_t) * w).sum().backward()
    dense = torch.tensor(a.toarray())
    np.testing.assert_allclose(x.grad.numpy(), (dense.T @ w).numpy(), atol=1e-5)


def test_cached_knn_memoises_by_content_and_k(tmp_path) -> None:
    x = np.random.default_rng(8).standard_normal((60, 5)).astype(np.float32)
    g1 = G.cached_knn_item_graph(x, k=4)
    assert G.cached_knn_item_graph(x.copy(), k=4) is g1  # same content → same graph
    assert G.cached_knn_item_graph(x, k=5) is not g1
    y = x.copy()
    y[0, 0] += 1.0
    assert G.cached_knn_item_graph(y, k=4) is not g1
    on_disk = G.cached_knn_item_graph(x, k=3, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("knn-*.npz"))) == 1
    G._KNN_CACHE.clear()
    again = G.cached_knn_item_graph(x, k=3, cache_dir=tmp_path)
    np.testing.assert_allclose(again.toarray(), on_disk.toarray())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_csr_matmul_matches_dense_with_empty_rows(dtype: torch.dtype) -> None:
    a = sp.random(40, 30, density=0.2, random_state=9, format="lil", dtype=np.float32)
    a[5, :] = 0  # an empty row: an empty bag must give zeros
    a = sp.csr_matrix(a)
    adj = G.scipy_to_torch_csr(a).to(dtype)
    x = torch.randn(64, 30, dtype=dtype).T  # non-contiguous on purpose
    dense = torch.tensor(a.toarray(), dtype=dtype)
    torch.testing.assert_close(G.csr_matmul(adj, x), dense @ x)
    torch.testing.assert_close(G.csr_matmul(adj.to_sparse_coo(), x), dense @ x)  # fallback path


def test_mean_propagation_matches_layer_sum_and_its_gradient() -> None:
    rng = np.random.default_rng(3)
    r = sp.random(12, 9, density=0.3, random_state=4, format="csr")
    adj = G.ui_adjacency(r)
    dense = torch.from_numpy(adj.toarray()).double()
    x = torch.from_numpy(rng.standard_normal((21, 5))).requires_grad_()
    a = G.scipy_to_torch_csr(adj).to(torch.float64)
    got = G.mean_propagation(a, x, 3)
    ref = (x + dense @ x + dense @ dense @ x + dense @ dense @ dense @ x) / 4
    torch.testing.assert_close(got, ref)
    weights = torch.from_numpy(rng.standard_normal((21, 5)))
    (g_got,) = torch.autograd.grad((got * weights).sum(), x)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), x)
    torch.testing.assert_close(g_got, g_ref)
    assert torch.autograd.gradcheck(lambda v: G.mean_propagation(a, v, 2), (x,))
