"""IFRU (Zhang et al., TORS 2024): influence-function recommendation unlearning with graph spill-over.

The deletion's *direct* influence (the gradient of the deleted pairs' loss on the original graph) plus
its *spill-over* through the rebuilt graph (the change of the retain loss's gradient for the pairs
whose propagated embeddings the rebuild moves), mapped through the inverse retain Hessian:
``θ = θ₀ + H_S⁻¹ (g_f + g_s)`` (:func:`~mmunlearn.unlearn.influence.influence_update` gives the
derivation and the ``|D_f|/|D_r|`` scaling). The variables are the embedding rows of the users/items
within ``hops`` graph hops of the deleted pairs — nearest first, at most ``max_nodes`` of them (IFRU's
pruning keeps the cost proportional to the deletion, not the catalogue) — plus the shared parameters
(projections, gates, attention) when ``shared``. MIG-GT has no item table: there the item side acts
through the shared parameters only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmunlearn.config import option
from mmunlearn.models.base import Recommender
from mmunlearn.unlearn.base import UnlearnContext, UnlearnMethod, register_method, seeded_rng
from mmunlearn.unlearn.influence import INFLUENCE_SEARCH, InfluenceConfig, influence_update, k_hop_nodes


@dataclass(frozen=True)
class IFRUConfig(InfluenceConfig):
    hops: int = option(1, "graph hops around the deleted pairs whose rows are updated (0 = their own users/items)", ge=0)
    max_nodes: int = option(4000, "budget: users + items updated (nearest hops first, a seeded sample of the last)", gt=0)
    shared: bool = option(True, "also update the shared (non-table) parameters")
    spillover: bool = option(True, "add the graph spill-over term (False = direct influence only)")


class IFRU(UnlearnMethod):
    name = "ifru"
    config_cls = IFRUConfig

    def _run(self, ctx: UnlearnContext) -> tuple[Recommender, dict[str, Any]]:
        cfg = self.config
        applied = ctx.applied
        users, items = k_hop_nodes(applied.original.train, applied.forget_users, applied.forget_items,
                                   cfg.hops, cfg.max_nodes, seeded_rng(ctx, 29))
        model, log = influence_update(ctx, cfg, users, items, shared=cfg.shared, spillover=cfg.spillover,
                                      salt=31)
        log["neighbourhood"] = {"hops": cfg.hops, "users": int(len(users)), "items": int(len(items))}
        return model, log


register_method("ifru", IFRU, IFRUConfig,
                "influence function with graph spill-over on the deletion's k-hop rows, CG solve (Zhang et al. 2024)",
                search=INFLUENCE_SEARCH)
