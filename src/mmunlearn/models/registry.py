"""Name → (backbone class, config class). A user's own backbone registers here with ``register``."""

from __future__ import annotations

from typing import Any

from mmunlearn.config import build
from mmunlearn.data.interactions import InteractionData
from mmunlearn.errors import InputError
from mmunlearn.models.base import Recommender
from mmunlearn.models.lightgcn import LightGCN, LightGCNConfig
from mmunlearn.models.mgcn import MGCN, MGCNConfig
from mmunlearn.models.miggt import MIGGT, MIGGTConfig

MODELS: dict[str, tuple[type[Recommender], type]] = {
    "lightgcn": (LightGCN, LightGCNConfig),
    "mgcn": (MGCN, MGCNConfig),
    "miggt": (MIGGT, MIGGTConfig),
}


def register(name: str, model_cls: type[Recommender], config_cls: type) -> None:
    """Make a backbone available to the trainer, the CLI and the benchmark under ``name``."""
    MODELS[name] = (model_cls, config_cls)


def model_config(name: str, *layers: tuple[str, dict[str, Any]]) -> Any:
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    return build(MODELS[name][1], *layers)


def build_model(name: str, data: InteractionData, config: Any | None = None) -> Recommender:
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    model_cls, config_cls = MODELS[name]
    return model_cls(data, config if config is not None else config_cls())


def _register_sharded() -> None:
    """The sharded wrapper (SISA / RecEraser) is a model like any other, so checkpoints load the same way."""
    from mmunlearn.models.sharded import ShardedConfig, ShardedRecommender

    register("sharded", ShardedRecommender, ShardedConfig)


_register_sharded()
