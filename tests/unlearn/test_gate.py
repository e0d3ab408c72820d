"""The ranking gate: weight ≈ 0 at the target, push above it, pull back (reverse) past it."""

from __future__ import annotations

import numpy as np

from mmunlearn.unlearn.tru.gate import gate_alpha, gate_stats, gate_weights


def test_weight_falls_to_zero_at_the_target_and_reverses_past_it():
    target = np.full(7, 0.22)
    r = np.array([0.0, 0.10, 0.20, 0.22, 0.24, 0.35, 0.9])
    w = gate_weights(r, target, tau=0.02)
    assert w[0] > 0.99 and w[1] > 0.99  # far above the target (ranked too high): full push
    assert abs(w[3]) < 1e-12  # at the target: no push
    assert 0 < w[2] < 0.5 and -0.5 < w[4] < 0  # near it: small, two-sided
    assert w[5] < -0.99 and w[6] < -0.99  # past it (over-forgotten): reversed
    assert np.all(np.diff(w) < 0)  # monotone in the current percentile


def test_alpha_is_the_spec_sigmoid():
    a = gate_alpha(np.array([0.1]), np.array([0.3]), tau=0.1)
    assert np.isclose(a[0], 1 / (1 + np.exp(-2.0)))


def test_grouped_pairs_share_their_group_mean_gap():
    r = np.array([0.1, 0.5, 0.9])
    t = np.array([0.5, 0.5, 0.5])
    w = gate_weights(r, t, tau=0.05, groups=np.array([7, 7, 7]))
    assert np.allclose(w, 0.0)  # the item's mean is on target: its shared row is left alone
    w2 = gate_weights(r, t, tau=0.05)
    assert w2[0] > 0.9 and w2[2] < -0.9


def test_gate_stats():
    s = gate_stats(np.array([1.0, -1.0, 0.0]), np.array([0.1, 0.3, 0.2]), np.array([0.2, 0.2, 0.2]))
    assert s["push_share"] == 1 / 3 and s["pull_share"] == 1 / 3 and abs(s["gap"]) < 1e-12


def test_logit_scale_resolves_the_top_of_the_ranking():
    # rank ~7 of 7,000 with a target of rank ~70, beside a mid-list pair 0.01 above its target
    r = np.array([0.001, 0.40])
    target = np.array([0.01, 0.41])
    flat = gate_weights(r, target, tau=0.05)
    logit = gate_weights(r, target, tau=0.5, scale="logit")
    assert abs(flat[0] - flat[1]) < 0.01  # the percentile scale sees the same small gap twice
    assert logit[0] > 0.95 and logit[1] < 0.1  # the logit scale pushes the head pair hard
    assert np.all(gate_weights(target, target, tau=0.5, scale="logit") == 0.0)


def test_logit_scale_is_two_sided_and_clips_the_ends():
    w = gate_weights(np.array([0.0, 1.0]), np.array([0.5, 0.5]), tau=0.5, scale="logit")
    assert np.isfinite(w).all() and w[0] > 0.99 and w[1] < -0.99


def test_unknown_scale_is_refused():
    import pytest

    with pytest.raises(ValueError, match="gate scale"):
        gate_weights(np.array([0.1]), np.array([0.2]), tau=0.1, scale="rank")
