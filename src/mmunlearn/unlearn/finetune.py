"""Fine-tune: continue BPR training on the retain data only (Adam, from the rebuilt original).

Forgetting happens only through the rebuilt graph and through drift (catastrophic forgetting); the
budget is a fraction of an epoch over D_r, so its cost grows with the retain set, not with D_f.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mmunlearn.config import option
from mmunlearn.models.base import Recommender
from mmunlearn.unlearn.base import (
    UnlearnContext,
    UnlearnMethod,
    register_method,
    seeded_rng,
    start_from_original,
)
from mmunlearn.unlearn.reverse import retain_bpr_steps


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: float = option(0.5, "passes over the retain data (fractions allowed)", gt=0)
    lr: float = option(1e-3, "Adam learning rate", gt=0)
    batch_size: int = option(2048, "BPR batch size", gt=0)
    reset: bool = option(False, "also re-initialise rows of fully deleted users/items first")


class Finetune(UnlearnMethod):
    name = "finetune"
    config_cls = FinetuneConfig

    def _run(self, ctx: UnlearnContext) -> tuple[Recommender, dict[str, Any]]:
        cfg = self.config
        model, log = start_from_original(ctx, reset=cfg.reset)
        device = torch.device(ctx.device)
        rng = seeded_rng(ctx, 11)
        log.update(retain_bpr_steps(model, ctx.retain.train, epochs=cfg.epochs, lr=cfg.lr,
                                    batch_size=cfg.batch_size, rng=rng, device=device))
        return model, log


register_method("finetune", Finetune, FinetuneConfig, "continue BPR on the retain data only",
                search={"epochs": [0.1, 0.3], "lr": [1e-3, 5e-3]})
