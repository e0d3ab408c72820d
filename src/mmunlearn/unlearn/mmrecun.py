"""MMRecUn (Sinha et al., AAAI 2025): reverse BPR on the forget set + forward BPR on the retain set,
all parameters, Adam — the uniform reverse update TRU refines.

Each step pairs a forget batch (deleted item should rank below a random negative:
``softplus(s_ui − s_uj)``) with a uniformly sampled retain batch (ordinary BPR), scored in one forward
pass: ``L = forget_weight · L_rev(D_f) + retain_weight · L_bpr(D_r sample) + aux``.
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
from mmunlearn.unlearn.reverse import RetainSampler, forget_batches, forward_bpr, joint_terms, reverse_bpr


@dataclass(frozen=True)
class MMRecUnConfig:
    epochs: int = option(3, "passes over the forget set", gt=0)
    lr: float = option(1e-3, "Adam learning rate", gt=0)
    batch_size: int = option(2048, "forget pairs per step", gt=0)
    retain_ratio: float = option(1.0, "retain pairs sampled per forget pair in a step", ge=0)
    forget_weight: float = option(1.0, "weight of the reverse-BPR term", ge=0)
    retain_weight: float = option(1.0, "weight of the forward-BPR term on retain samples", ge=0)


class MMRecUn(UnlearnMethod):
    name = "mmrecun"
    config_cls = MMRecUnConfig

    def _run(self, ctx: UnlearnContext) -> tuple[Recommender, dict[str, Any]]:
        cfg = self.config
        model, log = start_from_original(ctx)
        rng = seeded_rng(ctx, 17)
        pairs = ctx.applied.forget_pairs
        keys = pair_keys(ctx.applied.original.train)
        retain = RetainSampler(ctx.retain.train)
        opt = make_optimizer(model, cfg.lr)
        model.train()
        steps, hist = 0, []
        for _ in range(cfg.epochs):
            for _idx, u, i, j in forget_batches(pairs, ctx.applied.original.train, cfg.batch_size, rng, keys):
                r = retain.sample(int(round(cfg.retain_ratio * len(u))), rng)
                t_r, t_f = joint_terms(model, r, (u, i, j), device=ctx.device)
                l_f, l_r = reverse_bpr(t_f), forward_bpr(t_r)
                loss = cfg.forget_weight * l_f + cfg.retain_weight * l_r + t_r.aux
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
                hist.append((float(l_f.detach()), float(l_r.detach())))
        log.update({"steps": steps, "forget_loss": [hist[0][0], hist[-1][0]] if hist else [],
                    "retain_loss": [hist[0][1], hist[-1][1]] if hist else []})
        return model, log


register_method("mmrecun", MMRecUn, MMRecUnConfig,
                "reverse BPR on D_f + forward BPR on D_r samples, all parameters (Sinha et al. 2025)",
                search={"epochs": [5, 20], "lr": [1e-3, 1e-2]})
