import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmunlearn.evaluate.user_attack import (
    audit_forget_users,
    mf_item_vectors,
    rank_weights,
    user_features,
)
from mmunlearn.train.shadow import fit_user_attack

from .conftest import EPOCHS, MODEL_CFG, TRAIN_CFG

# 400 users are too few for the paper's MF dim 100 (see docs/AUDITS.md): a planted rank-8 dataset
# gets MF dim 8 and top-20 lists here; the defaults (100, 100) are for real data.
MF_DIM, TOP = 8, 20


class _Fixed:
    """A stand-in model with given final embeddings."""

    def __init__(self, users: np.ndarray, items: np.ndarray) -> None:
        self.u, self.i = torch.tensor(users), torch.tensor(items)

    def final_embeddings(self):
        return self.u, self.i


def test_rank_weights_are_the_papers():
    w = rank_weights(100)
    assert w[0] == pytest.approx(100 / 5050)
    assert w[-1] == pytest.approx(1 / 5050)
    np.testing.assert_allclose(w, (101 - np.arange(1, 101)) / 5050)
    assert w.sum() == pytest.approx(1.0)


def test_user_features_is_history_centroid_minus_weighted_recs():
    # one user, 5 items, scores 4 > 3 > 2 > 1 > 0 by item id; item 0 masked (a training positive)
    model = _Fixed(np.array([[1.0]]), np.array([[4.0], [3.0], [2.0], [1.0], [0.0]]))
    vectors = np.arange(10, dtype=np.float64).reshape(5, 2)
    mask = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]], dtype=np.float32))
    history = sp.csr_matrix(np.array([[1, 0, 0, 1, 0]], dtype=np.float32))
    feats = user_features(model, mask, np.array([0]), history, vectors, k=2)
    recs = (2 / 3) * vectors[1] + (1 / 3) * vectors[2]  # top-2 after masking: items 1, 2
    np.testing.assert_allclose(feats[0], (vectors[0] + vectors[3]) / 2 - recs)


def test_mf_vectors_sparse_and_dense_paths_agree():
    rng = np.random.default_rng(0)
    mat = sp.csr_matrix((rng.random((120, 90)) < 0.1).astype(np.float32))
    sparse_path = mf_item_vectors(mat, dim=5)  # 3·5 < 90: ARPACK
    dense_path = mf_item_vectors(mat, dim=40)[:, :5]  # 3·40 ≥ 90: exact dense SVD
    # the vectors are unique up to column signs; their Gram matrix is not
    np.testing.assert_allclose(sparse_path @ sparse_path.T, dense_path @ dense_path.T, atol=1e-8)
    assert mf_item_vectors(mat, dim=500).shape == (90, 89)  # clamped below min(shape)


@pytest.fixture(scope="module")
def attack(audit_data):
    return fit_user_attack(audit_data, "lightgcn", MODEL_CFG, TRAIN_CFG, seed=0, epochs=EPOCHS,
                           mf_dim=MF_DIM, k=TOP)


def test_attack_beats_chance_on_held_out_shadow_users(attack, audit_data):
    assert attack.heldout_auc > 0.75
    assert attack.item_vectors.shape == (audit_data.n_items, MF_DIM)
    assert not set(attack.shadow_members) & set(attack.shadow_nonmembers)


def test_attack_transfers_to_a_target_model(attack, user_case):
    """A target that never trained on 40 users (Retrain): the attack separates its members from them."""
    case = user_case
    members = np.setdiff1d(np.arange(case.data.n_users), case.forget_users)
    auc = attack.auc(case.retrain, case.retain, members, case.forget_users, case.data.train)
    assert auc > 0.75
    assert (attack.member_rate(case.retrain, case.retain, members, case.data.train)
            > attack.member_rate(case.retrain, case.retain, case.forget_users, case.data.train) + 0.4)


def test_deleted_users_look_member_without_unlearning(attack, user_case, original):
    case = user_case
    kept = audit_forget_users(attack, original, case.retain, case.forget_users, case.data.train)
    gone = audit_forget_users(attack, case.retrain, case.retain, case.forget_users, case.data.train)
    assert kept["member_rate_forget"] > gone["member_rate_forget"] + 0.5
    assert gone["auc_retained_vs_forget"] > 0.75
    assert gone["n_forget"] == len(case.forget_users)
    assert gone["n_retained"] == case.data.n_users - len(case.forget_users)


def test_the_shadow_cache_is_asked_by_a_key_that_names_the_training(audit_data):
    """Same call, same key (served from the store, no training); another training length, another key."""
    store: dict[str, object] = {}
    trained: list[str] = []

    def cache(data, key, train_fresh):
        if key not in store:
            trained.append(key)
            store[key] = train_fresh()
        return store[key]

    first = fit_user_attack(audit_data, "lightgcn", MODEL_CFG, TRAIN_CFG, seed=0, epochs=2, cache=cache)
    again = fit_user_attack(audit_data, "lightgcn", MODEL_CFG, TRAIN_CFG, seed=0, epochs=2, cache=cache)
    assert len(trained) == 1 and trained[0].startswith("s1000-")
    assert again.heldout_auc == pytest.approx(first.heldout_auc)
    fit_user_attack(audit_data, "lightgcn", MODEL_CFG, TRAIN_CFG, seed=0, epochs=3, cache=cache)
    assert len(trained) == 2 and trained[1] != trained[0]
