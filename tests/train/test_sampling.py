import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from mmunlearn.train.sampling import bpr_batches, contains, pair_keys, sample_negatives


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 40), st.integers(3, 40), st.floats(0.05, 0.6), st.integers(0, 9999))
def test_negatives_are_never_positives(n_users, n_items, density, seed):
    mat = sp.random(n_users, n_items, density=density, random_state=seed, format="csr")
    mat.data[:] = 1
    mat = sp.csr_matrix(mat)
    rng = np.random.default_rng(seed)
    full = np.asarray(mat.sum(1)).ravel() >= n_items
    users = np.flatnonzero(~full).repeat(3)
    neg = sample_negatives(users, mat, rng)
    assert not mat[users, neg].A1.any()


def test_contains_matches_dense():
    mat = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0]], dtype=np.float32))
    keys = pair_keys(mat)
    users = np.array([0, 0, 0, 1, 1, 1])
    items = np.array([0, 1, 2, 0, 1, 2])
    assert contains(keys, users, items, 3).tolist() == [True, False, True, False, True, False]


def test_epoch_covers_every_training_pair_once(tiny):
    rng = np.random.default_rng(0)
    seen = []
    for users, pos, neg in bpr_batches(tiny.train, 17, rng):
        assert len(users) == len(pos) == len(neg) <= 17
        seen += list(zip(users.tolist(), pos.tolist(), strict=True))
    expected = set(zip(*tiny.train.nonzero(), strict=True))
    assert len(seen) == tiny.train.nnz and set(seen) == {(int(u), int(i)) for u, i in expected}
