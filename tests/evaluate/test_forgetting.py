"""Forgetting metrics: rank percentiles (exact and sampled), unmasked forget recall, result rows."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmunlearn.data.interactions import InteractionData, pairs_to_csr
from mmunlearn.data.requests import ForgetRequest, apply_request
from mmunlearn.evaluate.forgetting import (
    ForgetEval,
    evaluate_forgetting,
    ks_distance,
    proxy_distance,
    rank_percentiles,
    result_row,
    utility_users,
)


def _brute(U, items_e, pairs, exclude):
    S = (U @ items_e.T).numpy()
    out = []
    for u, i in pairs:
        cand = [j for j in range(items_e.shape[0]) if exclude[u, j] == 0]
        out.append(sum(S[u, j] > S[u, i] for j in cand) / (len(cand) - 1))
    return np.array(out)


def test_percentiles_match_brute_force_with_retained_positives_excluded():
    rng = np.random.default_rng(0)
    U, items_e = torch.randn(30, 6), torch.randn(25, 6)
    ex = sp.random(30, 25, density=0.15, format="csr", random_state=2)
    ex.data[:] = 1
    pairs = np.array([(u, i) for u in range(30) for i in range(25) if ex[u, i] == 0 and rng.random() < 0.3])
    got = rank_percentiles(U, items_e, pairs, ex, batch_pairs=17)
    assert np.allclose(got, _brute(U, items_e, pairs, ex))


def test_top_is_zero_bottom_is_one_and_ties_count_as_not_higher():
    U = torch.tensor([[1.0, 0.0]])
    items_e = torch.tensor([[3.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.5, 0.0]])
    p = rank_percentiles(U, items_e, np.array([[0, 0], [0, 3], [0, 1]]), None)
    assert p.tolist() == [0.0, 1.0, pytest.approx(1 / 3)]
    # excluding item 0 (a retained positive) removes it from the candidates
    ex = sp.csr_matrix(np.array([[1, 0, 0, 0]]), dtype=np.float32)
    assert rank_percentiles(U, items_e, np.array([[0, 1]]), ex).tolist() == [0.0]
    tied = rank_percentiles(U, torch.zeros(4, 2), np.array([[0, 2]]), None)
    assert tied.tolist() == [0.0]


def test_sampled_candidates_give_the_percentile_on_the_sample():
    rng = np.random.default_rng(1)
    U, items_e = torch.randn(20, 5), torch.randn(60, 5)
    pairs = np.stack([rng.integers(0, 20, 50), rng.integers(0, 60, 50)], 1)
    cand = np.arange(0, 60, 3)
    got = rank_percentiles(U, items_e, pairs, None, candidates=cand)
    S = (U @ items_e.T).numpy()
    want = [np.mean([S[u, j] > S[u, i] for j in cand if j != i]) for u, i in pairs]
    assert np.allclose(got, want)


def _tiny():
    users = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    items = np.array([0, 1, 2, 1, 2, 3, 0, 3, 4, 2, 4, 5])
    train = pairs_to_csr(users, items, 4, 6)
    valid = pairs_to_csr(np.array([0, 1, 2, 3]), np.array([3, 4, 5, 0]), 4, 6)
    test = pairs_to_csr(np.array([0, 1, 2, 3]), np.array([4, 5, 1, 1]), 4, 6)
    return InteractionData(name="t", train=train, valid=valid, test=test)


class _Fixed(torch.nn.Module):
    def __init__(self, U, items_e):
        super().__init__()
        self.U, self.items_e = U, items_e

    def final_embeddings(self):
        return self.U, self.items_e


def test_forget_recall_scores_deleted_pairs_unmasked_and_utility_skips_request_users():
    data = _tiny()
    applied = apply_request(data, ForgetRequest.explicit(users=[0], data=data))
    assert list(utility_users(applied)) == [1, 2, 3]
    # user 0 scores its deleted items 0, 1, 2 highest: forget recall@20 must be 1 (they are not masked)
    U = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    items_e = torch.tensor([[3.0, 0.0], [2.0, 0.1], [1.0, 0.2], [0.0, 0.3], [0.0, 0.4], [0.0, 0.5]])
    ev = evaluate_forgetting(_Fixed(U, items_e), applied)
    assert ev.forget["recall@20"] == pytest.approx(1.0)
    assert np.allclose(ev.percentiles, [0.0, 0.2, 0.4])  # 3 of 6 items ahead of nothing / 1 / 2 of 5
    assert ev.utility["n_users"] == 3.0


def test_result_row_gap_sign_ks_and_noise():
    rt = ForgetEval(percentiles=np.full(100, 0.5), forget={"recall@20": 0.1}, utility={"ndcg@20": 0.04})
    under = ForgetEval(percentiles=np.full(100, 0.2), forget={"recall@20": 0.3}, utility={"ndcg@20": 0.04})
    noise = ForgetEval(percentiles=np.full(100, 0.49), forget={}, utility={"ndcg@20": 0.039})
    row = result_row("m", under, retrain=rt, noise=noise, seconds=2.0, retrain_seconds=100.0)
    assert row["gap"] == pytest.approx(-0.3)  # negative = under-forgetting
    assert row["ks"] == pytest.approx(1.0) and row["speedup"] == pytest.approx(50.0)
    assert row["noise_gap"] == pytest.approx(-0.01) and row["within_noise"] is False
    assert row["ndcg@20_vs_retrain"] == pytest.approx(1.0)
    assert ks_distance(np.arange(10.0), np.arange(10.0)) == 0.0
    d = proxy_distance(np.array([0.1, 0.3]), np.array([0.2, 0.4]))
    assert d["gap"] == pytest.approx(-0.1) and d["abs_gap"] == pytest.approx(0.1)


@pytest.mark.parametrize("subset_seed", [None, 0, 1])
def test_user_valid_ndcg_mean_is_evaluate_splits_mean_for_any_users(audit_data, original, subset_seed):
    from mmunlearn.evaluate.forgetting import user_valid_ndcg
    from mmunlearn.evaluate.ranking import evaluate_split

    users = None if subset_seed is None else np.sort(
        np.random.default_rng(subset_seed).choice(audit_data.n_users, 150, replace=False))
    scores = user_valid_ndcg(original, audit_data)
    ranked = evaluate_split(original, audit_data, "valid", ks=(20,), users=users)
    assert scores.mean(users) == pytest.approx(ranked["ndcg@20"], abs=1e-12)
    assert np.all(np.diff(scores.users) > 0) and len(scores.users) == len(scores.ndcg)


def test_user_valid_ndcg_mean_of_no_evaluated_user_is_nan(audit_data, original):
    from mmunlearn.evaluate.forgetting import user_valid_ndcg

    scores = user_valid_ndcg(original, audit_data)
    missing = np.setdiff1d(np.arange(audit_data.n_users), scores.users)
    assert np.isnan(scores.mean(missing))
