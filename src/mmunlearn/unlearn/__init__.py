"""Unlearning methods behind one interface: ``build_method(name).run(ctx) -> UnlearnResult``.

Importing this package registers the built-in methods: ``retrain``, ``rebuild``, ``rebuild-reset``,
``finetune``, ``neggrad``, ``mmrecun``, ``tru`` and the ablations ``tru-no-gate``, ``tru-no-scaling``,
``tru-no-isolation``, and the sharded exact methods ``sisa`` and ``receraser``.
"""

from mmunlearn.unlearn import finetune, mmrecun, neggrad, retrain, sharded, zero_step  # noqa: F401  (registration)
from mmunlearn.unlearn.base import (
    METHODS,
    UnlearnContext,
    UnlearnMethod,
    UnlearnResult,
    build_method,
    method_config,
    method_names,
    register_method,
    start_from_original,
)
from mmunlearn.unlearn.tru import TRU, TRUConfig  # noqa: F401  (registration)

__all__ = ["METHODS", "UnlearnContext", "UnlearnMethod", "UnlearnResult", "build_method", "method_config",
           "method_names", "register_method", "start_from_original", "TRU", "TRUConfig"]
