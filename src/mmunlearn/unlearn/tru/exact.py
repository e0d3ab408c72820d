"""TRU's exact part: what can be deleted from the model without any gradient step.

1. rebuild every training-derived graph on the retain data (all methods get this);
2. re-initialise the rows of users/items whose whole training history is deleted, drawn like a fresh
   model's rows — a deleted user is then exactly what Retrain makes of it (a row no gradient reaches);
3. **item prior**: Retrain does not leave a deleted item at its initial row — it is sampled as a
   negative in every epoch and drifts to where never-positive items sit. The model already holds that
   place: the rows of items that were never a training positive (or, without any, the least popular
   items — ``targets.negative_only_items``). Deleted item rows become their mean plus the fresh
   initialisation noise, with no look at Retrain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmunlearn.models.base import Recommender
from mmunlearn.unlearn.base import UnlearnContext, start_from_original
from mmunlearn.unlearn.targets import TargetConfig, negative_only_items


@torch.no_grad()
def apply_item_prior(model: Recommender, ctx: UnlearnContext, targets: TargetConfig | None = None) -> dict[str, Any]:
    """Move fully deleted item rows to the mean row of the negative-only reference items."""
    deleted = ctx.applied.deleted_items
    if len(deleted) == 0:
        return {"item_prior": 0}
    reference, how = negative_only_items(ctx.applied, targets)
    reference = np.setdiff1d(reference, deleted)
    if len(reference) == 0:
        return {"item_prior": 0, "item_prior_reference": "none"}
    params = dict(model.named_parameters())
    for pname, kind in model.embedding_tables().items():
        if kind != "item":
            continue
        table = params[pname]
        rows = torch.as_tensor(deleted, device=table.device)
        table[rows] += model.item_table_rows(pname, reference).mean(0, keepdim=True)
    return {"item_prior": int(len(deleted)), "item_prior_reference": how}


def exact_part(ctx: UnlearnContext, reset: bool = True, item_prior: bool = True,
               targets: TargetConfig | None = None) -> tuple[Recommender, dict]:
    """Deep copy + graph rebuild + reset of fully deleted rows (+ item prior)."""
    model, log = start_from_original(ctx, reset=reset)
    if reset and item_prior:
        log.update(apply_item_prior(model, ctx, targets))
    return model, log


__all__ = ["exact_part", "apply_item_prior"]
