import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmunlearn.evaluate.ranking import metrics_from_hits, rank_metrics, split_mask, top_k


def test_metrics_hand_computed_single_user():
    # targets {a, b, c}; ranked list hits at ranks 1 and 3 (of k=5)
    hits = np.array([[1, 0, 1, 0, 0]], dtype=float)
    m = metrics_from_hits(hits, np.array([3]), ks=(5,))
    assert m["recall@5"] == pytest.approx(2 / 3)
    assert m["precision@5"] == pytest.approx(2 / 5)
    assert m["hit@5"] == 1.0
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@5"] == pytest.approx(dcg / idcg)
    # MAP: (P@1 + P@3) / min(3, 5) = (1 + 2/3) / 3
    assert m["map@5"] == pytest.approx((1 + 2 / 3) / 3)


def test_metrics_ideal_dcg_truncated_at_k():
    hits = np.array([[1, 1]], dtype=float)
    m = metrics_from_hits(hits, np.array([5]), ks=(2,))
    assert m["ndcg@2"] == pytest.approx(1.0)
    assert m["recall@2"] == pytest.approx(2 / 5)


def test_metrics_average_over_users():
    hits = np.array([[1, 0], [0, 0]], dtype=float)
    m = metrics_from_hits(hits, np.array([1, 1]), ks=(1, 2))
    assert m["recall@1"] == pytest.approx(0.5)
    assert m["hit@2"] == pytest.approx(0.5)


def test_rank_metrics_masks_training_items():
    # 1 user, 4 items; item 0 scores highest but is a training item -> masked
    user = torch.tensor([[1.0]])
    items = torch.tensor([[4.0], [3.0], [2.0], [1.0]])
    train = sp.csr_matrix(np.array([[1, 0, 0, 0]], dtype=np.float32))
    target = sp.csr_matrix(np.array([[0, 1, 0, 0]], dtype=np.float32))
    m = rank_metrics(user, items, target, split_mask(train), ks=(1,))
    assert m["recall@1"] == 1.0
    m_unmasked = rank_metrics(user, items, target, None, ks=(1,))
    assert m_unmasked["recall@1"] == 0.0


def test_users_without_targets_are_skipped():
    user = torch.eye(2)
    items = torch.eye(2)
    target = sp.csr_matrix(np.array([[1, 0], [0, 0]], dtype=np.float32))
    m = rank_metrics(user, items, target, None, ks=(1,))
    assert m["n_users"] == 1 and m["recall@1"] == 1.0


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(3, 25), st.integers(0, 10_000))
def test_top_k_matches_argsort_and_never_returns_masked(n_users, n_items, seed):
    rng = np.random.default_rng(seed)
    u = torch.from_numpy(rng.standard_normal((n_users, 3)).astype(np.float32))
    i = torch.from_numpy(rng.standard_normal((n_items, 3)).astype(np.float32))
    mask = sp.random(n_users, n_items, density=0.3, random_state=seed, format="csr")
    mask.data[:] = 1
    mask = sp.csr_matrix(mask)
    k = 2
    free = n_items - np.asarray(mask.sum(1)).ravel()
    users = np.flatnonzero(free >= k)
    if len(users) == 0:
        return
    top = top_k(u, i, users, k, mask, batch_size=7)
    scores = (u @ i.T).numpy()
    for row, user in zip(top, users, strict=True):
        assert not mask[user, row].toarray().any()
        s = scores[user].copy()
        s[mask[user].indices] = -np.inf
        assert np.allclose(np.sort(s[row])[::-1], np.sort(s)[::-1][:k])


def test_rank_metrics_do_not_depend_on_the_user_batch():
    from mmunlearn.evaluate.ranking import user_batch_size

    gen = torch.Generator().manual_seed(5)
    u, i = torch.randn(40, 6, generator=gen), torch.randn(30, 6, generator=gen)
    targets = sp.random(40, 30, density=0.1, random_state=1, format="csr")
    mask = sp.random(40, 30, density=0.2, random_state=2, format="csr")
    mask.data[:] = 1.0
    whole = rank_metrics(u, i, targets, mask, ks=(5, 10))
    assert rank_metrics(u, i, targets, mask, ks=(5, 10), batch_size=3) == whole
    assert user_batch_size(7_050) == 594 and user_batch_size(23_033) * 23_033 <= 2 ** 22
    assert user_batch_size(100) == 4096
    assert user_batch_size(10 ** 9) == 1


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 12))
def test_user_ndcg_averages_to_the_reported_ndcg(seed, k):
    from mmunlearn.evaluate.ranking import user_ndcg

    gen = torch.Generator().manual_seed(seed)
    u, i = torch.randn(25, 4, generator=gen), torch.randn(15, 4, generator=gen)
    targets = sp.random(25, 15, density=0.15, random_state=seed, format="csr")
    mask = sp.random(25, 15, density=0.2, random_state=seed + 1, format="csr")
    mask.data[:] = 1.0
    users = np.arange(0, 25, 2)
    evaluated, values = user_ndcg(u, i, targets, mask, k=k, users=users)
    whole = rank_metrics(u, i, targets, mask, ks=(k,), users=users)
    assert set(evaluated) <= set(users) and np.all(np.diff(targets.indptr)[evaluated] > 0)
    assert np.all((values >= 0) & (values <= 1 + 1e-12))
    if len(evaluated):
        assert values.mean() == pytest.approx(whole[f"ndcg@{k}"])
