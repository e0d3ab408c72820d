"""Unlearning methods behind one interface: ``build_method(name).run(ctx) -> UnlearnResult``.

Every module of this package is imported here, and each method module registers itself
(``register_method``): a new method is one file in this folder, nothing else to edit. The built-in
methods: ``retrain``, ``rebuild``, ``rebuild-reset``, ``finetune``, ``neggrad``, ``mmrecun``, the sharded exact methods ``sisa`` and ``receraser``, the influence-function baselines ``ifru`` and ``scif``, ``tru`` and
its ablations; ``mmunlearn methods`` lists what is registered.
"""

import importlib
import pkgutil

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

for _module in pkgutil.iter_modules(__path__):  # registration: each method module registers on import
    importlib.import_module(f"{__name__}.{_module.name}")

from mmunlearn.unlearn.tru import TRU, TRUConfig  # noqa: E402

__all__ = ["METHODS", "UnlearnContext", "UnlearnMethod", "UnlearnResult", "build_method", "method_config",
           "method_names", "register_method", "start_from_original", "TRU", "TRUConfig"]
