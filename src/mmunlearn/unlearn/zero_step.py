"""Zero-step baselines: what deleting the data from the model's *structures* alone achieves.

- ``rebuild``: the original weights with the U–I adjacency (and item–item graphs) rebuilt without D_f;
- ``rebuild-reset``: additionally re-initialise the embedding rows of users/items whose whole training
  history was deleted (drawn like a fresh model's rows), so they look exactly like never-trained rows.

Both are exact in what they touch and take milliseconds; TRU starts from ``rebuild-reset``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmunlearn.config import option
from mmunlearn.models.base import Recommender
from mmunlearn.unlearn.base import UnlearnContext, UnlearnMethod, register_method, start_from_original


@dataclass(frozen=True)
class ZeroStepConfig:
    reset: bool = option(False, "re-initialise rows of fully deleted users/items")


class ZeroStep(UnlearnMethod):
    name = "rebuild"
    config_cls = ZeroStepConfig

    def _run(self, ctx: UnlearnContext) -> tuple[Recommender, dict[str, Any]]:
        return start_from_original(ctx, reset=self.config.reset)


register_method("rebuild", ZeroStep, ZeroStepConfig, "original weights, graph rebuilt without D_f")
register_method("rebuild-reset", ZeroStep, ZeroStepConfig,
                "graph rebuilt and rows of fully deleted users/items re-initialised", preset={"reset": True})
