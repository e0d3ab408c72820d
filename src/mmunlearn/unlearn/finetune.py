"""Fine-tune: continue BPR training on the retain data only (Adam, from the rebuilt original).

Forgetting happens only through the rebuilt graph and through drift (catastrophic forgetting); the
budget is a fraction of an epoch over D_r, so its cost grows with the retain set, not with D_f.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from mmunlearn.config import option
from mmunlearn.models.base import Recommender
from mmunlearn.train.sampling import bpr_batches
from mmunlearn.train.trainer import make_optimizer
from mmunlearn.unlearn.base import (
    UnlearnContext,
    UnlearnMethod,
    register_method,
    seeded_rng,
    start_from_original,
)


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: float = option(0.5, "passes over the retain data (fractions allowed)")
    lr: float = option(1e-3, "Adam learning rate")
    batch_size: int = option(2048, "BPR batch size")
    reset: bool = option(False, "also re-initialise rows of fully deleted users/items first")


class Finetune(UnlearnMethod):
    name = "finetune"
    config_cls = FinetuneConfig

    def _run(self, ctx: UnlearnContext) -> tuple[Recommender, dict[str, Any]]:
        cfg = self.config
        model, log = start_from_original(ctx, reset=cfg.reset)
        device = torch.device(ctx.device)
        rng = seeded_rng(ctx, 11)
        opt = make_optimizer(model, cfg.lr)
        n_steps = max(1, math.ceil(cfg.epochs * ctx.retain.train.nnz / cfg.batch_size))
        steps, losses = 0, []
        model.train()
        while steps < n_steps:
            for users, pos, neg in bpr_batches(ctx.retain.train, cfg.batch_size, rng):
                opt.zero_grad(set_to_none=True)
                loss = model.loss(torch.as_tensor(users, device=device), torch.as_tensor(pos, device=device),
                                  torch.as_tensor(neg, device=device))
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                steps += 1
                if steps >= n_steps:
                    break
        log.update({"steps": steps, "first_loss": losses[0], "last_loss": losses[-1]})
        return model, log


register_method("finetune", Finetune, FinetuneConfig, "continue BPR on the retain data only")
