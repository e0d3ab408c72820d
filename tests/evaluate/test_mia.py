import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmunlearn.data.interactions import pairs_to_csr
from mmunlearn.evaluate.mia import (
    FEATURE_NAMES,
    as_pairs,
    audit_forget_set,
    csr_pairs,
    fit_membership_attack,
    pair_features,
)

COL = {name: j for j, name in enumerate(FEATURE_NAMES)}


def _naive_features(user_emb: np.ndarray, item_emb: np.ndarray, train: sp.csr_matrix, u: int, i: int) -> dict:
    """Loop-level reference of the documented feature definitions for one pair."""
    scores = user_emb @ item_emb.T
    n_items = item_emb.shape[0]
    own = set(train[u].indices.tolist()) - {i}
    cand = [j for j in range(n_items) if j not in own]
    s = scores[u, i]
    higher = sum(scores[u, j] > s for j in cand)
    others = sorted((scores[u, j] for j in cand if j != i), reverse=True)[:20]
    col = scores[:, i]
    degree = int(np.bincount(train.indices, minlength=n_items)[i]) - int(i in train[u].indices)
    activity = train[u].nnz - int(i in train[u].indices)
    return {
        "score": s,
        "rank_percentile": higher / (len(cand) - 1),
        "log_rank": np.log1p(higher),
        "user_z": (s - scores[u].mean()) / scores[u].std(),
        "item_z": (s - col.mean()) / col.std(),
        "gap_top20": s - np.mean(others),
        "log_item_degree": np.log1p(degree),
        "log_user_activity": np.log1p(activity),
    }


def test_pair_features_match_a_loop_reference():
    rng = np.random.default_rng(0)
    n_users, n_items, d = 12, 40, 5
    ue, ie = rng.standard_normal((n_users, d)), rng.standard_normal((n_items, d))
    mask = rng.random((n_users, n_items)) < 0.2
    train = sp.csr_matrix(mask.astype(np.float32))
    tu, ti = csr_pairs(train)
    pu, pi = rng.integers(0, n_users, 30), rng.integers(0, n_items, 30)  # mostly non-members
    users, items = np.r_[tu[::3], pu], np.r_[ti[::3], pi]
    emb = (torch.tensor(ue, dtype=torch.float64), torch.tensor(ie, dtype=torch.float64))
    feats = pair_features(emb, train, (users, items), user_block=4)  # several blocks, many pairs per user
    for row, (u, i) in enumerate(zip(users, items, strict=True)):
        ref = _naive_features(ue, ie, train, int(u), int(i))
        for name, value in ref.items():
            assert feats[row, COL[name]] == pytest.approx(value, rel=1e-9, abs=1e-9), (name, u, i)


def test_features_ignore_whether_the_pair_itself_is_masked():
    """A deleted pair scored with the retain data (pair unmasked) and with the original data (pair
    masked, self-excluded) gets the same features: only the *other* positives define the view."""
    rng = np.random.default_rng(1)
    ue, ie = torch.randn(20, 4, dtype=torch.float64), torch.randn(50, 4, dtype=torch.float64)
    train = sp.csr_matrix((rng.random((20, 50)) < 0.15).astype(np.float32))
    users, items = csr_pairs(train)
    for k in range(0, len(users), max(1, len(users) // 10)):
        keep = np.arange(len(users)) != k
        retain = pairs_to_csr(users[keep], items[keep], 20, 50)
        pair = (users[k:k + 1], items[k:k + 1])
        np.testing.assert_allclose(pair_features((ue, ie), train, pair), pair_features((ue, ie), retain, pair))


def test_rank_percentile_spans_top_to_bottom():
    ue = torch.tensor([[1.0]], dtype=torch.float64)
    ie = torch.tensor([[3.0], [2.0], [1.0], [0.0]], dtype=torch.float64)
    train = sp.csr_matrix((1, 4), dtype=np.float32)
    feats = pair_features((ue, ie), train, (np.zeros(4, dtype=int), np.arange(4)))
    np.testing.assert_allclose(feats[:, COL["rank_percentile"]], [0.0, 1 / 3, 2 / 3, 1.0])


def test_as_pairs_accepts_tuple_array_and_csr():
    mat = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1]], dtype=np.float32))
    expect = (np.array([0, 1, 1]), np.array([1, 0, 2]))
    for given in (expect, np.stack(expect, axis=1), mat):
        u, i = as_pairs(given)
        np.testing.assert_array_equal(u, expect[0])
        np.testing.assert_array_equal(i, expect[1])
    with pytest.raises(ValueError):
        as_pairs(np.zeros((3, 3)))


@pytest.fixture(scope="module")
def attack(interaction_case):
    return fit_membership_attack(interaction_case.original, interaction_case.data,
                                 exclude_pairs=interaction_case.forget, seed=0)


def test_attack_is_strong_on_held_out_users(attack, interaction_case):
    assert attack.kind in ("logreg", "hgb")
    assert attack.candidate_aucs[attack.kind] == max(attack.candidate_aucs.values())
    assert attack.heldout_auc > 0.8
    assert attack.heldout_balanced_accuracy > 0.7
    # the deleted pairs were never attack-training members
    n = interaction_case.data.n_items
    forget_keys = set((interaction_case.forget[0] * n + interaction_case.forget[1]).tolist())
    assert not forget_keys & set((attack.heldout_members[0] * n + attack.heldout_members[1]).tolist())


def test_original_model_leaks_training_pairs_not_valid_pairs(attack, interaction_case):
    case = interaction_case
    valid = csr_pairs(case.data.valid)
    rate_forget = attack.member_rate(case.original, case.data, case.forget)
    rate_valid = attack.member_rate(case.original, case.data, valid)
    assert rate_forget > 0.7
    assert rate_forget > rate_valid + 0.5
    assert attack.auc(case.original, case.data, case.forget, valid) > 0.85


def test_retrain_forgets_what_the_original_leaks(attack, interaction_case):
    """The audit's use: deleted pairs look member under the original, unseen under Retrain."""
    case = interaction_case
    orig = audit_forget_set(attack, case.original, case.retain, case.forget)  # "do nothing" beside Retrain
    retr = audit_forget_set(attack, case.retrain, case.retain, case.forget)
    assert orig["member_rate_forget"] > retr["member_rate_forget"] + 0.5
    assert orig["auc_forget_vs_nonmember"] > 0.85
    assert abs(retr["auc_forget_vs_nonmember"] - 0.5) < 0.12  # deleted pairs ≈ unseen pairs under Retrain
    assert abs(retr["member_rate_forget"] - retr["member_rate_nonmember"]) < 0.15
    assert retr["n_forget"] == len(case.forget[0])
    assert retr["attack"]["classifier"] == attack.kind
