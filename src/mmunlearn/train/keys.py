"""What a trained model depends on, as one record: the key under which a saved model or a training in
progress is reused (the user attack's saved shadow, a training snapshot).

One definition, so that two caches cannot disagree about what makes two trainings the same: the interaction
splits' and the content's fingerprints, the backbone, and both configs less the fields that only say where
the training runs (:data:`mmunlearn.config.WHERE_IT_RUNS`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from mmunlearn.config import WHERE_IT_RUNS
from mmunlearn.data.interactions import InteractionData


def training_record(data: InteractionData, backbone: str, model_config: Any, train_config: Any) -> dict[str, Any]:
    def what(config: Any) -> dict[str, Any]:
        return {k: v for k, v in asdict(config).items() if k not in WHERE_IT_RUNS}

    return {"data": data.fingerprint(), "content": data.content_fingerprint(), "backbone": backbone,
            "model_config": what(model_config), "train_config": what(train_config)}


__all__ = ["training_record"]
