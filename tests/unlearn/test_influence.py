"""Influence-function machinery (CG/LiSSA, HVPs, Gauss–Newton) and the IFRU / SCIF methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mmunlearn.models.registry import build_model, model_config
from mmunlearn.unlearn.base import build_method, method_names, seeded_rng
from mmunlearn.unlearn.influence import (
    HVP,
    GaussNewton,
    Subspace,
    conjugate_gradient,
    flat_grad,
    k_hop_nodes,
    lissa,
)
from tests.unlearn.conftest import make_ctx, toy_ctx


def _spd(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=gen, dtype=torch.float64)
    return m @ m.T / n + 0.5 * torch.eye(n, dtype=torch.float64)


@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_cg_matches_direct_solve(damping):
    a = _spd(25, 0)
    b = torch.randn(25, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x, log = conjugate_gradient(lambda v: a @ v, b, damping=damping, max_iter=100, tol=1e-10)
    direct = torch.linalg.solve(a + damping * torch.eye(25, dtype=torch.float64), b)
    assert log["stop"] == "converged"
    assert torch.allclose(x, direct, atol=1e-8)


def test_cg_stops_on_negative_curvature():
    a = torch.diag(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    _, log = conjugate_gradient(lambda v: a @ v, torch.ones(3, dtype=torch.float64), max_iter=10)
    assert log["stop"] == "negative_curvature"


def test_lissa_matches_direct_solve():
    a = _spd(10, 2)
    b = torch.randn(10, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    scale = float(torch.linalg.eigvalsh(a).max()) * 1.5
    x, log = lissa(lambda v: a @ v, b, scale=scale, max_iter=5000, tol=1e-12)
    assert log["stop"] == "converged"
    assert torch.allclose(x, torch.linalg.solve(a, b), atol=1e-6)


class _Ridge(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(dim, dtype=torch.float64))


@pytest.mark.parametrize("mode", ["autograd", "fd"])
def test_influence_removal_is_exact_on_a_quadratic(mode):
    """Ridge regression: removing D_f moves the optimum by exactly H_r⁻¹ ∇L_f(θ₀) (the loss is quadratic),
    so HVP + CG must reproduce the retrained optimum computed by a direct solve."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(60, 6, generator=gen, dtype=torch.float64)
    y = x @ torch.randn(6, generator=gen, dtype=torch.float64) + 0.1 * torch.randn(60, generator=gen,
                                                                                   dtype=torch.float64)
    lam = 0.5
    forget, retain = np.arange(0, 12), np.arange(12, 60)

    def optimum(rows: np.ndarray) -> torch.Tensor:
        xr = x[rows]
        return torch.linalg.solve(xr.T @ xr + lam * torch.eye(6, dtype=torch.float64), xr.T @ y[rows])

    model = _Ridge(6)
    with torch.no_grad():
        model.w.copy_(optimum(np.arange(60)))
    space = Subspace(model, {}, ["w"])

    def loss_on(rows: np.ndarray):
        # sums over pairs; the ridge term belongs to the retain objective (it stays after the deletion)
        return lambda: 0.5 * ((x[rows] @ model.w - y[rows]) ** 2).sum() + (
            0.5 * lam * (model.w ** 2).sum() if rows is retain else 0.0)

    g_f = flat_grad(loss_on(forget), space)
    hvp = HVP(loss_on(retain), space, mode=mode)
    step, log = conjugate_gradient(hvp, g_f, max_iter=50, tol=1e-12)
    assert hvp.mode == mode
    assert log["stop"] == "converged"
    assert torch.allclose(model.w.detach() + step, optimum(retain), atol=1e-6 if mode == "autograd" else 1e-4)


def test_hvp_double_backward_through_lightgcn(trained, small_data):
    """LightGCN's propagation is differentiable twice: the autograd HVP agrees with finite differences."""
    model, _ = trained
    ctx = make_ctx(trained, small_data, "interaction")
    work = build_method("rebuild").run(ctx).model.double()
    users, items = np.arange(10), np.arange(8)
    space = Subspace(work, {"user_emb": users, "item_emb": items}, [])
    pairs = ctx.applied.forget_pairs[:40]
    neg = np.random.default_rng(0).integers(0, small_data.n_items, len(pairs))
    from mmunlearn.unlearn.influence import triple_loss

    loss = triple_loss(work, pairs[:, 0], pairs[:, 1], neg)
    v = torch.randn(space.size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact, approx = HVP(loss, space, mode="autograd"), HVP(loss, space, mode="fd", fd_eps=1e-5)
    hv, hv_fd = exact(v), approx(v)
    assert exact.mode == "autograd"
    assert float((hv - hv_fd).norm() / hv.norm()) < 1e-4
    gn = GaussNewton(work, pairs[:, 0], pairs[:, 1], neg, space, mode="autograd")
    gn_fd = GaussNewton(work, pairs[:, 0], pairs[:, 1], neg, space, mode="fd", fd_eps=1e-6)
    gv = gn(v)
    assert float(v @ gv) >= 0.0  # positive semi-definite
    assert float((gv - gn_fd(v)).norm() / gv.norm()) < 1e-3


def test_k_hop_nodes_grow_with_hops_and_respect_the_budget(small_data):
    rng = np.random.default_rng(0)
    u0, i0 = k_hop_nodes(small_data.train, np.array([0]), np.array([], dtype=np.int64), 0, 10_000, rng)
    u1, i1 = k_hop_nodes(small_data.train, np.array([0]), np.array([], dtype=np.int64), 1, 10_000, rng)
    assert list(u0) == [0] and len(i0) == 0
    assert set(i1) == set(small_data.train[0].indices)
    u2, i2 = k_hop_nodes(small_data.train, np.array([0]), np.array([], dtype=np.int64), 3, 25, rng)
    assert len(u2) + len(i2) <= 25 and 0 in u2


def _changed_rows(before: torch.Tensor, after: torch.Tensor) -> set[int]:
    return set(np.flatnonzero((before != after).any(dim=1).numpy()).tolist())


@pytest.mark.parametrize("regime", ["interaction", "user"])
def test_ifru_changes_only_its_neighbourhood(trained, small_data, regime):
    model, _ = trained
    ctx = make_ctx(trained, small_data, regime, ratio=0.05)
    method = build_method("ifru", hops=1, max_nodes=40)
    result = method.run(ctx)
    applied = ctx.applied
    users, items = k_hop_nodes(applied.original.train, applied.forget_users, applied.forget_items, 1, 40,
                               seeded_rng(ctx, 29))  # the neighbourhood IFRU draws
    new = result.model
    changed_u = _changed_rows(model.user_emb.detach(), new.user_emb.detach())
    changed_i = _changed_rows(model.item_emb.detach(), new.item_emb.detach())
    assert changed_u  # it did something
    assert changed_u <= set(users.tolist()) | set(applied.deleted_users.tolist())
    assert changed_i <= set(items.tolist()) | set(applied.deleted_items.tolist())
    seeds = len(applied.forget_users) + len(applied.forget_items)  # hop 0 is always kept
    assert len(users) + len(items) <= max(40, seeds)
    assert result.log["solve"]["iterations"] >= 1 and result.log["hvp"] == "autograd"


def test_scif_updates_selected_users_and_their_items_only(toy_trained, small_data):
    ctx = toy_ctx(toy_trained, small_data, "interaction", ratio=0.05)
    result = build_method("scif").run(ctx)
    new, old = result.model, toy_trained
    applied = ctx.applied
    users = set(applied.forget_users.tolist())
    items = set(applied.forget_items.tolist()) | set(applied.retain.train[applied.forget_users].indices.tolist())
    assert _changed_rows(old.user_emb.detach(), new.user_emb.detach()) <= users
    assert _changed_rows(old.item_emb.detach(), new.item_emb.detach()) <= items
    assert torch.equal(old.image.weight, new.image.weight)  # no shared parameter moves (selective)
    assert result.log["step_norm"] > 0


def test_ifru_on_a_backbone_without_item_rows_moves_shared_parameters(content_trained, small_data):
    ctx = toy_ctx(content_trained, small_data, "item", ratio=0.05)
    result = build_method("ifru").run(ctx)
    assert not torch.equal(content_trained.image.weight, result.model.image.weight)


@pytest.mark.parametrize("backbone", ["lightgcn", "mgcn", "miggt"])
@pytest.mark.parametrize("name", ["ifru", "scif"])
def test_registered_and_runnable_on_every_backbone(small_data, backbone, name):
    from mmunlearn.data.requests import apply_request, sample_request
    from mmunlearn.unlearn.base import UnlearnContext

    assert name in method_names()
    torch.manual_seed(0)
    cfg = model_config(backbone, ("test", {"dim": 8}))
    model = build_model(backbone, small_data, cfg)
    applied = apply_request(small_data, sample_request(small_data, "interaction", 0.05, 0))
    ctx = UnlearnContext(original=model, applied=applied, model_name=backbone, model_config=cfg)
    result = build_method(name, max_iter=5).run(ctx)
    assert result.log["variables"] > 0
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    expected = "fd" if backbone == "miggt" else "autograd"  # MIG-GT's embedding_bag: no double backward
    assert result.log["hvp"] == expected
