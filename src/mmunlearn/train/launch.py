"""One entry point for every way of training a freshly built model: ``fit``.

A sharded model trains shard by shard (``train.sharded``), ``nproc > 1`` (or a ``torchrun`` launch)
trains data-parallel (``train.distributed``), anything else runs the single-process trainer. ``work_dir``
holds what makes an interrupted training resumable: finished shards, or the single-process trainer's
snapshots (``train.snapshot``); data-parallel training has neither. The
pipeline (``mmunlearn train``) and Retrain both call this, so they support the same modes.
"""

from __future__ import annotations

from pathlib import Path

from mmunlearn.data.interactions import InteractionData
from mmunlearn.models.base import Recommender
from mmunlearn.train.trainer import TrainConfig, TrainResult, train


def fit(model: Recommender, data: InteractionData, cfg: TrainConfig, *, nproc: int = 1,
        work_dir: Path | None = None, show_progress: bool = True) -> TrainResult:
    from mmunlearn.models.sharded import ShardedRecommender

    if isinstance(model, ShardedRecommender):
        from mmunlearn.train.sharded import train_sharded

        return train_sharded(model, data, cfg, nproc=nproc, work_dir=work_dir, show_progress=show_progress)
    from mmunlearn.train.distributed import launched_by_torchrun, train_distributed

    if nproc > 1 or launched_by_torchrun():
        return train_distributed(model, data, cfg, nproc, show_progress=show_progress)
    return train(model, data, cfg, show_progress=show_progress, snapshot_dir=work_dir)


__all__ = ["fit"]
