import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmunlearn.evaluate.similarity import embedding_cka, jaccard_rows, linear_cka, topk_overlap


class _Fixed:
    """A stand-in model with given final embeddings."""

    def __init__(self, users, items) -> None:
        self.u, self.i = torch.as_tensor(users), torch.as_tensor(items)

    def final_embeddings(self):
        return self.u, self.i


def _rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(5, 80), d=st.integers(1, 12), seed=st.integers(0, 2**31 - 1),
       scale=st.floats(1e-3, 1e3), shift=st.floats(-10, 10))
def test_cka_is_one_under_rotation_scaling_and_shift(n, d, seed, scale, shift):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    y = scale * x @ _rotation(d, rng) + shift
    assert linear_cka(x, y) == pytest.approx(1.0, abs=1e-8)
    assert linear_cka(y, x) == pytest.approx(linear_cka(x, y), abs=1e-12)


def test_cka_low_for_unrelated_and_graded_for_noisy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 16))
    unrelated = linear_cka(x, rng.standard_normal((2000, 16)))
    noisy = linear_cka(x, x + rng.standard_normal((2000, 16)))
    assert unrelated < 0.05
    assert unrelated < noisy < 1.0
    assert linear_cka(x, x[:, :8]) < 1.0  # keeping half the directions is not the same representation


def test_cka_widths_may_differ_and_torch_float32_works():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 4))
    wide = np.hstack([x, np.zeros((50, 3))]) @ _rotation(7, rng)  # same geometry in 7 dims
    assert linear_cka(torch.tensor(x, dtype=torch.float32), wide) == pytest.approx(1.0, abs=1e-6)


def test_cka_of_a_constant_matrix_is_undefined():
    assert np.isnan(linear_cka(np.ones((10, 3)), np.random.default_rng(0).standard_normal((10, 3))))
    with pytest.raises(ValueError):
        linear_cka(np.ones((10, 3)), np.ones((9, 3)))


def test_jaccard_rows():
    a = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3]])
    b = np.array([[3, 1, 2], [4, 5, 6], [3, 7, 8]])
    np.testing.assert_allclose(jaccard_rows(a, b), [1.0, 0.0, 1 / 5])


def test_embedding_cka_and_overlap_see_through_rotations():
    """Two models whose embeddings differ by one orthogonal rotation score identically: CKA 1, overlap 1."""
    rng = np.random.default_rng(2)
    ue, ie = rng.standard_normal((30, 6)), rng.standard_normal((50, 6))
    q = _rotation(6, rng)
    a, b = _Fixed(ue, ie), _Fixed(ue @ q, ie @ q)
    cka = embedding_cka(a, b)
    assert cka["user"] == pytest.approx(1.0) and cka["item"] == pytest.approx(1.0)
    mask = sp.csr_matrix((rng.random((30, 50)) < 0.2).astype(np.float32))
    users = np.arange(30)
    assert topk_overlap(a, b, users, mask, k=10) == pytest.approx(1.0)
    other = _Fixed(rng.standard_normal((30, 6)), rng.standard_normal((50, 6)))
    assert topk_overlap(a, other, users, mask, k=10) < 0.5
    assert embedding_cka(a, other)["item"] < 0.5
    sub = embedding_cka(a, other, users=np.arange(10), items=np.arange(20))
    assert set(sub) == {"user", "item"}


def test_overlap_respects_the_mask():
    # both models rank items 0 > 1 > 2 > 3; masking item 0 for one side only shifts that side's list
    ue, ie = np.array([[1.0]]), np.array([[4.0], [3.0], [2.0], [1.0]])
    a = _Fixed(ue, ie)
    m0 = sp.csr_matrix(np.array([[1, 0, 0, 0]], dtype=np.float32))
    assert topk_overlap(a, a, np.array([0]), m0, k=2) == 1.0
    assert topk_overlap(a, a, np.array([0]), None, k=2, mask_b=m0) == pytest.approx(1 / 3)
