"""The shadow recommender of the user-level membership attack (Zhang et al., CCS 2021).

The attack itself (features, classifier, audit) lives in ``evaluate/user_attack.py``, below models and
training in the layering; training the attacker's shadow model needs both, so that one step lives here,
in ``train/``, and hands ``evaluate`` a plain ``(shadow_data, seed) -> model`` callable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from mmunlearn.data.interactions import InteractionData
from mmunlearn.evaluate.user_attack import UserAttack, fit_user_attack_with
from mmunlearn.models.base import Recommender
from mmunlearn.models.registry import build_model
from mmunlearn.train.keys import training_record
from mmunlearn.train.trainer import TrainConfig, train

#: ``(shadow_data, key, train_fresh) -> shadow``: returns the shadow saved under ``key`` for this data,
#: else ``train_fresh()`` (and may save it). Implemented above this layer (bench), where checkpoints live.
ShadowCache = Callable[[InteractionData, str, Callable[[], Recommender]], Recommender]


def fit_user_attack(data: InteractionData, backbone_name: str, model_config: Any, train_config: TrainConfig,
                    seed: int = 0, *, epochs: int | None = None, mf_dim: int = 100, k: int = 100,
                    member_share: float = 0.5, holdout: float = 0.3,
                    show_progress: bool = False, cache: ShadowCache | None = None) -> UserAttack:
    """Train a shadow ``backbone_name`` on a shadow split of ``data`` and fit the attack MLP on it.

    ``epochs`` (if given) overrides the shadow's training length (no early stopping: one evaluation at
    the end), which keeps the audit cheap; otherwise ``train_config`` is used as is. The shadow's seed
    is ``seed + 1000`` (init and sampling), different from any target trained with ``seed``.
    :func:`~mmunlearn.evaluate.user_attack.fit_user_attack_with` takes any shadow trainer instead.

    With ``cache`` the shadow comes from ``cache(shadow_data, key, train_fresh)``, ``key`` naming what
    it depends on (shadow split, content, backbone, both configs): the shadow is a full training, and
    without a store a grid that adds a method to a finished user-regime group paid for it again. The
    classifier on top is refitted (cheap and deterministic given the seed), so nothing is unpickled.
    """
    def train_shadow(shadow_data: InteractionData, shadow_seed: int) -> Recommender:
        cfg = replace(train_config, seed=shadow_seed)
        if epochs is not None:
            cfg = replace(cfg, epochs=epochs, min_epochs=epochs, eval_every=epochs)

        def train_fresh() -> Recommender:
            torch.manual_seed(shadow_seed)
            shadow = build_model(backbone_name, shadow_data, model_config)
            train(shadow, shadow_data, cfg, show_progress=show_progress)
            return shadow

        if cache is None:
            return train_fresh()
        key = f"s{shadow_seed}-{_shadow_key(shadow_data, backbone_name, model_config, cfg)}"
        return cache(shadow_data, key, train_fresh)

    return fit_user_attack_with(data, train_shadow, seed, mf_dim=mf_dim, k=k, member_share=member_share,
                                holdout=holdout)


def _shadow_key(data: InteractionData, backbone_name: str, model_config: Any, cfg: TrainConfig) -> str:
    """What a saved shadow depends on: the shadow split, the content, the backbone and both configs
    (less :data:`~mmunlearn.config.WHERE_IT_RUNS`, as for the grid's reuse of an original)."""
    text = json.dumps(training_record(data, backbone_name, model_config, cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


__all__ = ["ShadowCache", "fit_user_attack"]
