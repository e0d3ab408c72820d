"""TRU's step as a ``torch.optim.Optimizer``: plain SGD, row-restricted and preconditioned on embedding
tables, averaged and trust-region capped on shared weights.

Why not Adam: TRU's push is a handful of full-batch steps whose size the gate controls (it halves the
step when the pushed pairs overshoot); Adam's per-coordinate normalisation would undo that control and
keep table-sized state. This optimiser keeps no state at all, so its memory follows the touched rows.

Each parameter is its own group with:
- ``table``: whether it is an embedding table (rows are users/items);
- ``rows``: the touched row indices of a table (``None``: every row);
- ``precond``: ``(I + β·H)⁻¹`` for tables in the scoring space (``plan.py``), or ``None``.
"""

from __future__ import annotations

import torch


class RowPreconditionedSGD(torch.optim.Optimizer):
    def __init__(self, params: list[torch.Tensor], *, lr: float, table: list[bool],
                 rows: list[torch.Tensor | None], precond: list[torch.Tensor | None], max_rel_step: float) -> None:
        groups = [{"params": [p], "table": t, "rows": r, "precond": pre}
                  for p, t, r, pre in zip(params, table, rows, precond, strict=True)]
        super().__init__(groups, {"lr": lr, "max_rel_step": max_rel_step})

    def set_lr(self, lr: float) -> None:
        for group in self.param_groups:
            group["lr"] = lr

    @torch.no_grad()
    def step(self, closure=None, *, n_pairs: int = 1) -> None:  # noqa: ANN001 - Optimizer's signature
        """One step from each parameter's ``.grad`` (the caller sets it: TRU's gradients come from
        ``autograd.grad`` with per-branch scales, not from ``backward``).

        A shared (dense) weight gets every pair's term while an embedding row only gets its own pairs':
        the summed terms are averaged over ``n_pairs`` for shared weights, and their step is capped at
        ``max_rel_step`` of the weight's norm (a trust region, as in LARS).
        """
        if closure is not None:
            raise ValueError("RowPreconditionedSGD takes no closure")
        for group in self.param_groups:
            p = group["params"][0]
            g = p.grad
            if g is None:
                continue
            lr, pre, rows = group["lr"], group["precond"], group["rows"]
            if pre is not None:
                g = g @ pre
            if not group["table"]:
                step = (lr / max(n_pairs, 1)) * g
                cap = group["max_rel_step"] * float(p.norm()) / (float(step.norm()) + 1e-12)
                p.sub_(step * min(1.0, cap))
            elif rows is None:
                p.sub_(lr * g)
            elif len(rows):
                p[rows] -= lr * g[rows]


__all__ = ["RowPreconditionedSGD"]
