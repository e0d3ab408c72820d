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

**Scale.** SPEC §4 writes the gate on percentiles. TRU's default measures the distance in
logit(percentile) instead (``scale="logit"``, τ = 0.5): Recall@20 lives in the top 0.3 % of a
7,000-item ranking, where a pair at rank 5 with a target of rank 70 is 0.01 from it — invisible next to
a percentile τ of 0.05, so such pairs were barely pushed and stayed in the top 20 (twice Retrain's share
on Baby). In logits that gap is 2.6, the same as moving from the median to the 0.93 quantile.
"""

from __future__ import annotations

import numpy as np


def gate_alpha(r: np.ndarray, target: np.ndarray, tau: float) -> np.ndarray:
    """σ((r* − r)/τ): 1 far above the target, ½ at it, 0 far below it."""
    z = (np.asarray(target, dtype=np.float64) - np.asarray(r, dtype=np.float64)) / max(tau, 1e-12)
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # numerically safe sigmoid


GATE_SCALES = ("logit", "percentile")
#: percentiles are clipped to [LOGIT_EPS, 1 − LOGIT_EPS] before the logit (0 and 1 occur: sampled ranks)
LOGIT_EPS = 1e-3


def logit_percentile(r: np.ndarray) -> np.ndarray:
    """log(r / (1 − r)) of clipped percentiles: equal steps near the top and in the middle of a ranking."""
    r = np.clip(np.asarray(r, dtype=np.float64), LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(r) - np.log1p(-r)


def gate_weights(r: np.ndarray, target: np.ndarray, tau: float, groups: np.ndarray | None = None,
                 scale: str = "percentile") -> np.ndarray:
    """Signed weights 2α − 1 per pair; with ``groups``, each group is gated on its mean gap.

    ``scale="logit"`` measures the distance in logit(percentile) (see the module docstring).
    """
    r = np.asarray(r, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if scale == "logit":
        r, target = logit_percentile(r), logit_percentile(target)
    elif scale not in GATE_SCALES:
        raise ValueError(f"gate scale must be one of {list(GATE_SCALES)}, got {scale!r}")
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


__all__ = ["gate_alpha", "gate_weights", "gate_stats", "logit_percentile", "GATE_SCALES"]
