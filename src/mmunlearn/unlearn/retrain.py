"""Retrain: the gold standard. A fresh model trained from scratch on the retain data with the original's
model config, training config and early stopping on valid (never test). The reference every approximate
method is judged against, and the cost they must beat. ``nproc > 1`` trains on several processes
(``train.distributed``); on a sharded checkpoint Retrain retrains every shard and the aggregator."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from mmunlearn.config import option
from mmunlearn.models.base import Recommender
from mmunlearn.models.registry import build_model
from mmunlearn.train.launch import fit
from mmunlearn.train.trainer import seed_everything
from mmunlearn.unlearn.base import UnlearnContext, UnlearnMethod, register_method


@dataclass(frozen=True)
class RetrainConfig:
    max_epochs: int = option(0, "cap on epochs (0 = the original's training config, unchanged)", ge=0)
    nproc: int = option(1, "processes: data-parallel training on torch.distributed (a sharded model: its "
                           "shards in parallel)", ge=1)


class Retrain(UnlearnMethod):
    name = "retrain"
    config_cls = RetrainConfig

    def _run(self, ctx: UnlearnContext) -> tuple[Recommender, dict[str, Any]]:
        cfg = replace(ctx.train_config, seed=ctx.seed, device=str(ctx.device),
                      threads=torch.get_num_threads())  # threads do not change the result; keep the caller's
        if self.config.max_epochs > 0:
            cfg = replace(cfg, epochs=min(cfg.epochs, self.config.max_epochs))
        seed_everything(ctx.seed)
        model = build_model(ctx.model_name, ctx.retain, ctx.model_config)
        result = fit(model, ctx.retain, cfg, nproc=self.config.nproc, work_dir=ctx.work_dir,
                     show_progress=ctx.show_progress)
        log = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
               "best_valid": result.best_valid, "train_seconds": result.seconds, "seed": ctx.seed}
        if result.resumed:  # UnlearnMethod.run counts the interrupted process's time in
            log["resumed"] = result.resumed
        return model, log


register_method("retrain", Retrain, RetrainConfig,
                "train from scratch on the retain data (same config and early stopping as the original)")
