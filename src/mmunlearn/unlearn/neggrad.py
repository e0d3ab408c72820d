"""NegGrad: gradient ascent on the forget set's BPR loss (Adam, all parameters, from the rebuilt original).

The classic approximate-unlearning baseline: unbounded, so its result depends entirely on how long it
runs; it has no notion of where a deleted pair should end up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmunlearn.config import option
from mmunlearn.models.base import Recommender
from mmunlearn.train.sampling import pair_keys
from mmunlearn.train.trainer import make_optimizer
from mmunlearn.unlearn.base import (
    UnlearnContext,
    UnlearnMethod,
    register_method,
    seeded_rng,
    start_from_original,
)
from mmunlearn.unlearn.reverse import ascent_bpr, forget_batches, joint_terms


@dataclass(frozen=True)
class NegGradConfig:
    epochs: int = option(3, "passes over the forget set", gt=0)
    lr: float = option(1e-3, "Adam learning rate", gt=0)
    batch_size: int = option(2048, "forget pairs per step", gt=0)


class NegGrad(UnlearnMethod):
    name = "neggrad"
    config_cls = NegGradConfig

    def _run(self, ctx: UnlearnContext) -> tuple[Recommender, dict[str, Any]]:
        cfg = self.config
        model, log = start_from_original(ctx)
        rng = seeded_rng(ctx, 13)
        pairs = ctx.applied.forget_pairs
        keys = pair_keys(ctx.applied.original.train)
        opt = make_optimizer(model, cfg.lr)
        model.train()
        steps, losses = 0, []
        for _ in range(cfg.epochs):
            for _idx, u, i, j in forget_batches(pairs, ctx.applied.original.train, cfg.batch_size, rng, keys):
                (terms,) = joint_terms(model, (u, i, j), device=ctx.device)
                loss = ascent_bpr(terms) + terms.aux
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                steps += 1
        log.update({"steps": steps, "losses": losses[:1] + losses[-1:]})
        return model, log


register_method("neggrad", NegGrad, NegGradConfig, "gradient ascent on the forget set's BPR loss",
                search={"epochs": [1, 5], "lr": [1e-3, 1e-2]})
