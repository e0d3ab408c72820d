"""TRU's step as an optimiser: touched rows only, preconditioned; shared weights averaged and capped."""

from __future__ import annotations

import pytest
import torch

from mmunlearn.unlearn.tru.optim import RowPreconditionedSGD


def test_table_step_touches_only_its_rows_and_applies_the_preconditioner():
    table = torch.nn.Parameter(torch.ones(5, 3))
    pre = torch.diag(torch.tensor([1.0, 0.5, 0.0]))
    opt = RowPreconditionedSGD([table], lr=2.0, table=[True], rows=[torch.tensor([1, 3])], precond=[pre],
                               max_rel_step=0.02)
    before = table.detach().clone()
    table.grad = torch.ones(5, 3)
    opt.step(n_pairs=7)  # n_pairs does not scale a row step: each row gets only its own pairs' terms
    moved = torch.tensor([1, 3])
    assert torch.equal(table[[0, 2, 4]], before[[0, 2, 4]])
    assert torch.allclose(table[moved], before[moved] - 2.0 * torch.tensor([1.0, 0.5, 0.0]))


def test_shared_step_is_averaged_and_capped_relative_to_the_weight():
    w = torch.nn.Parameter(torch.ones(4))
    opt = RowPreconditionedSGD([w], lr=1.0, table=[False], rows=[None], precond=[None], max_rel_step=0.02)
    w.grad = torch.full((4,), 100.0)
    opt.step(n_pairs=10)
    step = torch.ones(4) - w.detach()
    assert float(step.norm()) == pytest.approx(0.02 * 2.0, rel=1e-5)  # capped at 2 % of ‖w‖ = 2
    w.grad = torch.full((4,), 1e-3)
    before = w.detach().clone()
    opt.set_lr(0.5)
    opt.step(n_pairs=10)
    assert torch.allclose(before - w.detach(), torch.full((4,), 0.5 * 1e-3 / 10))  # below the cap: lr/n · g


def test_parameters_without_gradient_stay_put_and_closures_are_refused():
    a, b = torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(3))
    opt = RowPreconditionedSGD([a, b], lr=1.0, table=[True, False], rows=[None, None], precond=[None, None],
                               max_rel_step=1.0)
    a.grad = torch.ones(2, 2)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(3)) and torch.equal(a.detach(), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="closure"):
        opt.step(lambda: 0.0)
