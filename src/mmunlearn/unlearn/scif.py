"""SCIF (Li et al. 2023, "Selective and collaborative influence function"): influence removal that
updates only what a deletion selects.

*Selective*: only the embeddings of the users who lost pairs are updated — under the influence
approximation the other users' rows barely move. *Collaborative*: the items of those users (the
deleted items and, with ``collaborative``, the items the users keep) are updated with them, so the
user–item collaboration the deletion touches is re-fitted together instead of leaving the items
stale. Direct influence only (SCIF was designed for factorisation models: no graph spill-over term)
and no shared parameters; the step is ``θ = θ₀ + H_S⁻¹ g_f`` with the Hessian of the retain pairs
that touch those rows (:func:`~mmunlearn.unlearn.influence.influence_update` gives the scaling).
An item request selects the users of the deleted items and their items by the same rule; users whose
whole history is deleted are re-initialised instead (``reset_deleted``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmunlearn.config import option
from mmunlearn.models.base import Recommender
from mmunlearn.unlearn.base import UnlearnContext, UnlearnMethod, register_method, seeded_rng
from mmunlearn.unlearn.influence import INFLUENCE_SEARCH, InfluenceConfig, influence_update


@dataclass(frozen=True)
class SCIFConfig(InfluenceConfig):
    collaborative: bool = option(True, "also update the items the selected users keep (their collaborative "
                                       "neighbourhood), not only the deleted pairs' items")
    max_items: int = option(4000, "budget: collaborative items updated (a seeded sample beyond it)", gt=0)


class SCIF(UnlearnMethod):
    name = "scif"
    config_cls = SCIFConfig

    def _run(self, ctx: UnlearnContext) -> tuple[Recommender, dict[str, Any]]:
        cfg = self.config
        applied = ctx.applied
        users = applied.forget_users
        items = applied.forget_items
        if cfg.collaborative and len(users):
            kept = np.unique(applied.retain.train[users].indices)
            extra = np.setdiff1d(kept, items)
            room = max(0, cfg.max_items - len(items))
            if len(extra) > room:
                extra = np.sort(seeded_rng(ctx, 37).choice(extra, size=room, replace=False))
            items = np.union1d(items, extra)
        model, log = influence_update(ctx, cfg, users, items, shared=False, spillover=False, salt=41)
        log["selection"] = {"users": int(len(users)), "items": int(len(items))}
        return model, log


register_method("scif", SCIF, SCIFConfig,
                "selective + collaborative influence function: the deletion's users and their items, CG solve "
                "(Li et al. 2023)",
                search=INFLUENCE_SEARCH)
