"""The shadow recommender of the user-level membership attack (Zhang et al., CCS 2021).

The attack itself (features, classifier, audit) lives in ``evaluate/user_attack.py``, below models and
training in the layering; training the attacker's shadow model needs both, so that one step lives here,
in ``train/``, and hands ``evaluate`` a plain ``(shadow_data, seed) -> model`` callable.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from mmunlearn.data.interactions import InteractionData
from mmunlearn.evaluate.user_attack import UserAttack, fit_user_attack_with
from mmunlearn.models.base import Recommender
from mmunlearn.models.registry import build_model
from mmunlearn.train.trainer import TrainConfig, train


def fit_user_attack(data: InteractionData, backbone_name: str, model_config: Any, train_config: TrainConfig,
                    seed: int = 0, *, epochs: int | None = None, mf_dim: int = 100, k: int = 100,
                    member_share: float = 0.5, holdout: float = 0.3,
                    show_progress: bool = False) -> UserAttack:
    """Train a shadow ``backbone_name`` on a shadow split of ``data`` and fit the attack MLP on it.

    ``epochs`` (if given) overrides the shadow's training length (no early stopping: one evaluation at
    the end), which keeps the audit cheap; otherwise ``train_config`` is used as is. The shadow's seed
    is ``seed + 1000`` (init and sampling), different from any target trained with ``seed``.
    :func:`~mmunlearn.evaluate.user_attack.fit_user_attack_with` takes any shadow trainer instead.
    """
    def train_shadow(shadow_data: InteractionData, shadow_seed: int) -> Recommender:
        cfg = replace(train_config, seed=shadow_seed)
        if epochs is not None:
            cfg = replace(cfg, epochs=epochs, min_epochs=epochs, eval_every=epochs)
        torch.manual_seed(shadow_seed)
        shadow = build_model(backbone_name, shadow_data, model_config)
        train(shadow, shadow_data, cfg, show_progress=show_progress)
        return shadow

    return fit_user_attack_with(data, train_shadow, seed, mf_dim=mf_dim, k=k, member_share=member_share,
                                holdout=holdout)


__all__ = ["fit_user_attack"]
