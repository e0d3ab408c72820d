"""Branch-wise modality scaling — protect the content branches that retained users depend on.

Per modality branch b (``id``, ``image``, ``text``, … as the backbone declares in
``modality_branches()``), on probe batches:

    ρ_b = ‖∇_b L_f‖ / (‖∇_b L_r‖ + ε)          c_b = clip(ρ_b / mean_b' ρ_b', c_min, c_max)

and the *reverse* (forget) gradient of every parameter of branch b is multiplied by c_b; the retain
gradient is not scaled. A branch whose parameters carry much of the deletion relative to what the
retained data needs (large ρ) is edited more; a shared branch that retained users lean on (small ρ) is
edited less. The mean runs over the branches the push writes (``plan.py`` passes only those): a branch
isolation left out takes no share of the step, and with one written branch (graph-only backbones, or
isolation keeping the push in the ID rows) c = 1. TRU applies its updates with plain SGD so that c_b acts
linearly on the step (Adam's per-coordinate normalisation would cancel it).
"""

from __future__ import annotations

import numpy as np
import torch


def branch_of(model: torch.nn.Module) -> dict[str, str]:
    """Parameter name → branch name."""
    out: dict[str, str] = {}
    for branch, names in model.modality_branches().items():
        for n in names:
            out[n] = branch
    return out


def branch_ratios(grads_f: dict[str, torch.Tensor], grads_r: dict[str, torch.Tensor], branches: dict[str, str],
                  eps: float = 1e-12) -> dict[str, float]:
    """ρ_b per branch from per-parameter forget / retain gradients."""
    sq_f: dict[str, float] = {}
    sq_r: dict[str, float] = {}
    for name, g in grads_f.items():
        b = branches.get(name, "id")
        sq_f[b] = sq_f.get(b, 0.0) + float(g.double().pow(2).sum())
        gr = grads_r.get(name)
        sq_r[b] = sq_r.get(b, 0.0) + (float(gr.double().pow(2).sum()) if gr is not None else 0.0)
    return {b: float(np.sqrt(sq_f[b]) / (np.sqrt(sq_r[b]) + eps)) for b in sq_f}


def branch_scales(ratios: dict[str, float], c_min: float, c_max: float) -> dict[str, float]:
    """c_b = clip(ρ_b / mean ρ, c_min, c_max); all 1 when there is one branch or no signal."""
    if len(ratios) <= 1:
        return {b: 1.0 for b in ratios}
    mean = float(np.mean(list(ratios.values())))
    if not np.isfinite(mean) or mean <= 0:
        return {b: 1.0 for b in ratios}
    return {b: float(np.clip(r / mean, c_min, c_max)) for b, r in ratios.items()}


__all__ = ["branch_of", "branch_ratios", "branch_scales"]
