"""Ranking fusion gate — *where to stop* pushing a deleted pair.

Each deleted pair (u, i) has a target rank percentile r* (``unlearn/targets.py``, retrain-free) and a
current percentile r (0 = top, 1 = bottom). The gate is

    α_ui = σ((r* − r) / τ)          (SPEC §4)
    w_ui = 2·α_ui − 1 = tanh((r* − r) / (2τ))  ∈ (−1, 1)

and the reverse term of the pair is multiplied by w: while the pair ranks above its target (r < r*)
w > 0 and it is pushed down; at the target w = 0 and the push stops; past it (over-forgetting, r > r*)
w < 0 and the same term pulls it back up — the two-sided gate. τ sets how sharply the push fades
(|w| = 0.46 at |r* − r| = τ, 0.96 at 4τ). Pairs that share a reference *group* (all deleted pairs of
one fully deleted item, or of one fully deleted user) are gated on the group's mean gap, because the
parameter that moves them is shared (the item's or the user's row).
"""

from __future__ import annotations

import numpy as np


def gate_alpha(r: np.ndarray, target: np.ndarray, tau: float) -> np.ndarray:
    """σ((r* − r)/τ): 1 far above the target, ½ at it, 0 far below it."""
    z = (np.asarray(target, dtype=np.float64) - np.asarray(r, dtype=np.float64)) / max(tau, 1e-12)
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # numerically safe sigmoid


def gate_weights(r: np.ndarray, target: np.ndarray, tau: float, groups: np.ndarray | None = None) -> np.ndarray:
    """Signed weights 2α − 1 per pair; with ``groups``, each group is gated on its mean gap."""
    r = np.asarray(r, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if groups is not None and len(r):
        _, inv = np.unique(groups, return_inverse=True)
        counts = np.bincount(inv)
        r = (np.bincount(inv, weights=r) / counts)[inv]
        target = (np.bincount(inv, weights=target) / counts)[inv]
    return 2.0 * gate_alpha(r, target, tau) - 1.0


def gate_stats(w: np.ndarray, r: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """What the gate saw at one refresh (logged per epoch)."""
    if len(w) == 0:
        return {"n": 0}
    return {"n": int(len(w)), "mean_pct": float(np.mean(r)), "target_mean": float(np.mean(target)),
            "gap": float(np.mean(r) - np.mean(target)), "mean_abs_w": float(np.mean(np.abs(w))),
            "push_share": float(np.mean(w > 0.05)), "pull_share": float(np.mean(w < -0.05)),
            "mean_w": float(np.mean(w))}


__all__ = ["gate_alpha", "gate_weights", "gate_stats"]
