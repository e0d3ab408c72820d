"""Sharded exact unlearning: ``sisa`` (Bourtoule et al. 2021) and ``receraser`` (Chen et al., WWW 2022).

Both work on a sharded checkpoint (``mmunlearn train --shards K --partition ...``): the model is K
backbones, each trained only on its shard's pairs, plus an aggregator. A deletion retrains from scratch
exactly the shards that held deleted pairs, on their retain pairs, and — for RecEraser — the attention
aggregator on all retain data; every other shard is copied untouched (bit-identical weights). The
result is what training the sharded model on the retain data would give (same partition, same seeds),
so no trace of the deleted pairs is left in any parameter. The partition itself (which shard an id
belongs to) is kept from the original training: RecEraser's balanced partition was computed on data
that included the deleted pairs (see docs/DISTRIBUTED.md).

With the runner's ``work_dir`` (the child folder's ``.progress``) every finished shard leaves a
progress marker, so a killed job resumes and retrains only the shards still missing. The log records
the retrained / resumed / untouched shards and shard-seconds (the sum of the shards' training times,
which is the compute a deletion costs whatever the number of processes) beside the wall seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from mmunlearn.config import option
from mmunlearn.data.partition import shards_touched
from mmunlearn.errors import InputError
from mmunlearn.models.base import Recommender
from mmunlearn.models.sharded import ShardedRecommender
from mmunlearn.train.sharded import train_aggregator, train_shards
from mmunlearn.unlearn.base import UnlearnContext, UnlearnMethod, clone_model, register_method


@dataclass(frozen=True)
class ShardedUnlearnConfig:
    nproc: int = option(1, "processes that retrain shards in parallel (torch.distributed, gloo)", ge=1)
    max_epochs: int = option(0, "cap on a shard's epochs (0 = the original's training config, unchanged)", ge=0)
    shards: int = option(4, "K of the sharded model the benchmark grid trains for this method (a sharded "
                            "checkpoint given to `mmunlearn unlearn` keeps its own K)", ge=1)
    partition: str = option("", "partition of the grid's sharded model ('' = sisa: random, receraser: user)")


class ShardedRetrain(UnlearnMethod):
    """Retrain the touched shards (+ the aggregator) of a sharded model."""

    name = "sisa"
    config_cls = ShardedUnlearnConfig
    #: the aggregator this method's checkpoints carry
    aggregator = "mean"
    how_to_train = "mmunlearn train --shards K --partition random"
    #: the benchmark grid trains a sharded original for this method (bench/grid.py)
    needs_sharded_original = True

    def _check(self, model: Recommender) -> ShardedRecommender:
        if not isinstance(model, ShardedRecommender):
            raise InputError(f"method {self.name!r} needs a sharded checkpoint (train it with "
                             f"`{self.how_to_train}`); this checkpoint is a single {model.name!r} model")
        if model.config.aggregator != self.aggregator:
            raise InputError(f"method {self.name!r} expects a sharded checkpoint with the {self.aggregator!r} "
                             f"aggregator, this one has {model.config.aggregator!r} "
                             f"(use {method_for_aggregator(model.config.aggregator)})")
        return model

    def _run(self, ctx: UnlearnContext) -> tuple[Recommender, dict[str, Any]]:
        original = self._check(ctx.original)
        cfg = replace(ctx.train_config, seed=ctx.seed, device=str(ctx.device), threads=torch.get_num_threads())
        if self.config.max_epochs > 0:
            cfg = replace(cfg, epochs=min(cfg.epochs, self.config.max_epochs))
        model = clone_model(original)
        model.to(torch.device(ctx.device))
        model.see_retain(ctx.applied.retain.train, ctx.applied.deleted_items)  # untouched shards: same pairs, the same graph
        touched = shards_touched(ctx.applied.forget, original.assignment(), original.axis)
        report = train_shards(model, ctx.retain, cfg, touched, seed=ctx.seed, nproc=self.config.nproc,
                              work_dir=ctx.work_dir, show_progress=ctx.show_progress)
        model.to(torch.device(ctx.device))
        agg = train_aggregator(model, ctx.retain, cfg, ctx.seed) if touched else \
            {"aggregator": model.config.aggregator, "aggregator_seconds": 0.0, "aggregator_retrained": False}
        log = {"shards": model.n_shards, "partition": model.config.partition, "axis": model.axis,
               "untouched_shards": [k for k in range(model.n_shards) if k not in touched],
               **report.record(), **agg}
        log["shard_seconds_total_with_aggregator"] = log["shard_seconds_total"] + float(agg["aggregator_seconds"])
        return model, log


class RecEraser(ShardedRetrain):
    name = "receraser"
    aggregator = "attention"
    how_to_train = "mmunlearn train --shards K --partition user|item"


register_method("sisa", ShardedRetrain, ShardedUnlearnConfig,
                "exact: retrain only the touched shards of a SISA model (random user shards, mean scores)")
register_method("receraser", RecEraser, ShardedUnlearnConfig,
                "exact: retrain the touched shards of a RecEraser model (balanced partition) + its attention "
                "aggregator")



def method_for_aggregator(aggregator: str) -> str:
    """The registered sharded exact method whose checkpoints carry ``aggregator`` (what unlearns them)."""
    from mmunlearn.unlearn.base import method_names, method_spec

    for name in method_names():
        cls = method_spec(name).cls
        if issubclass(cls, ShardedRetrain) and cls.aggregator == aggregator:
            return name
    raise InputError(f"no sharded unlearning method for the {aggregator!r} aggregator")


__all__ = ["ShardedRetrain", "RecEraser", "ShardedUnlearnConfig", "method_for_aggregator"]
