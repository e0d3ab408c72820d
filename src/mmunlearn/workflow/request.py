"""The one way a method is run on a request — the CLI (``runner.py``), the comparison table
(``compare.py``) and the benchmark grid all call :func:`run_method`, so a setting means the same
thing everywhere and selection never runs a configuration twice.

- ``config``: a complete method config, run as it is (no selection);
- ``fixed``: settings held as given (``--set``, a config file, a grid's ``method_sets``); with
  ``select`` the rest of the method's declared search space is searched with the retrain-free rule
  (``selection.py``: valid data + proxy, never test, never Retrain) and the chosen configuration's own
  run is the result; without it, the defaults with ``fixed`` applied run once.

``seconds`` of the result is the unlearning call alone; the selection's own cost is reported apart
(``selection_seconds``), as is the per-request set-up a shared :class:`Selector` pays once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mmunlearn.unlearn.base import UnlearnContext, UnlearnResult, build_method, method_config
from mmunlearn.workflow.selection import Selector

#: the second-seed Retrain (the noise floor) is trained with ``seed + NOISE_SEED_OFFSET`` everywhere
NOISE_SEED_OFFSET = 1000


@dataclass
class MethodRun:
    result: UnlearnResult
    config: Any
    selection: dict[str, Any]


def run_method(name: str, ctx: UnlearnContext, *, config: Any = None, fixed: dict[str, Any] | None = None,
               select: bool = False, selector: Selector | None = None) -> MethodRun:
    """Run method ``name`` on ``ctx``'s request under the one rule above."""
    if config is not None:
        if fixed:
            raise ValueError("pass a complete config or fixed settings, not both")
        return MethodRun(build_method(name, config).run(ctx), config,
                         {"rule": "fixed config", "selection_seconds": 0.0})
    if select:
        t0 = time.perf_counter()
        cfg, report, result = (selector or Selector(ctx)).select(name, fixed=fixed)
        return MethodRun(result, cfg, {**report, "selection_seconds": time.perf_counter() - t0})
    cfg = method_config(name, ("fixed settings", fixed or {}))
    return MethodRun(build_method(name, cfg).run(ctx), cfg,
                     {"rule": "fixed settings" if fixed else "defaults", "fixed": dict(fixed or {}),
                      "selection_seconds": 0.0})


__all__ = ["run_method", "MethodRun", "NOISE_SEED_OFFSET"]
