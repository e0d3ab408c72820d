"""The unlearning interface: one context in, ``UnlearnResult(model, seconds, log)`` out, one registry.

Every method receives an :class:`UnlearnContext` (the trained original model, which it must never
mutate; the applied request with the retain data; the original's model/training configs) and returns a
new model. ``seconds`` is the wall time of the unlearning call alone — copying, graph rebuild and the
updates; never evaluation. Approximate methods start from a deep copy of the original and see the
rebuilt graph (:func:`start_from_original`); Retrain builds a fresh model.

Methods register with :func:`register_method` under a name with their config class, optional preset
overrides (this is how the TRU ablations are defined: ``tru-no-gate`` is TRU with ``gate=False``) and the
small search space the retrain-free selection rule tries (``workflow/selection.py``); a new method is
therefore one file that calls :func:`register_method`, plus its import in ``unlearn/__init__.py``.
"""

from __future__ import annotations

import copy
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmunlearn.config import build
from mmunlearn.data.requests import AppliedRequest
from mmunlearn.errors import InputError
from mmunlearn.evaluate.forgetting import UserValidNDCG
from mmunlearn.models.base import Recommender
from mmunlearn.train.trainer import TrainConfig


@dataclass
class UnlearnContext:
    """What every method gets. ``original`` is read-only; ``train_config`` is the original's training config."""

    original: Recommender
    applied: AppliedRequest
    model_name: str
    model_config: Any
    train_config: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    device: str = "cpu"
    show_progress: bool = False
    #: a folder the method may keep resumable progress in (the runner: the child folder's ``.progress``,
    #: removed once the child is saved); ``None``: no resume
    work_dir: Path | None = None
    #: the original's per-user valid NDCG@20 on the original data, where the caller already holds it (the
    #: grid scores each original once, outside every method's timer: a deployment knows its model's
    #: validation scores); ``None``: a method that needs it computes it inside its own call
    original_valid: UserValidNDCG | None = None

    @property
    def retain(self):
        return self.applied.retain


@dataclass
class UnlearnResult:
    model: Recommender
    seconds: float
    log: dict[str, Any] = field(default_factory=dict)


class UnlearnMethod(ABC):
    """A configured unlearning method. Subclasses set ``config_cls`` and implement :meth:`_run`."""

    name: str = "base"
    config_cls: type = object

    def __init__(self, config: Any | None = None, name: str | None = None) -> None:
        self.config = config if config is not None else self.config_cls()
        if name is not None:
            self.name = name

    def run(self, ctx: UnlearnContext) -> UnlearnResult:
        """Unlearn; times the call and checks the original was not modified.

        ``seconds`` is wall time, what a user waits. The log's ``cpu_seconds`` is the process's CPU time over
        the call: on a shared CPU machine other jobs stretch the first but not the second, so a speed-up
        from CPU seconds on both sides does not depend on the load (on a GPU it misses the device's work).
        A method that went on from an interrupted process's work (a Retrain resumed from a training
        snapshot) logs that work's seconds under ``resumed``; they are counted in, so a resume never makes
        Retrain look cheaper than it was.
        """
        torch.manual_seed(ctx.seed)
        before = _fingerprint(ctx.original)
        start, cpu_start = time.perf_counter(), time.process_time()
        model, log = self._run(ctx)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        earlier = log.get("resumed") or {}  # a Retrain gone on from an interrupted process's snapshot
        seconds += float(earlier.get("seconds", 0.0))
        cpu_seconds += float(earlier.get("cpu_seconds", 0.0))
        if _fingerprint(ctx.original) != before:  # a bug, never a user error
            raise RuntimeError(f"method {self.name!r} modified the original model")
        log = {"method": self.name, "config": _config_dict(self.config), **log, "cpu_seconds": cpu_seconds}
        return UnlearnResult(model=model, seconds=seconds, log=log)

    @abstractmethod
    def _run(self, ctx: UnlearnContext) -> tuple[Recommender, dict[str, Any]]:
        """Return the unlearned model and a log of what was done (JSON-serialisable)."""


def _fingerprint(model: torch.nn.Module) -> tuple:
    return tuple(float(p.detach().double().sum()) + float(p.detach().double().abs().sum())
                 for p in model.parameters())


def _config_dict(cfg: Any) -> dict[str, Any]:
    try:
        return {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    except TypeError:
        return {}


def clone_model(model: Recommender) -> Recommender:
    """Deep copy of a backbone; sparse graph tensors (not deep-copyable) are shared, not copied.

    Graphs are derived data that :func:`start_from_original` rebuilds right away, and no method edits
    a graph in place, so sharing them with the original is safe.
    """
    memo: dict[int, Any] = {}
    for module in model.modules():
        for value in list(vars(module).values()):
            for t in (value.values() if isinstance(value, dict) else
                      value if isinstance(value, list | tuple) else (value,)):
                if isinstance(t, torch.Tensor) and t.layout != torch.strided:
                    memo[id(t)] = t
    return copy.deepcopy(model, memo)


def start_from_original(ctx: UnlearnContext, *, reset: bool = False) -> tuple[Recommender, dict[str, Any]]:
    """Deep copy of the original that sees the retain graph; ``reset`` re-initialises fully deleted rows.

    This is the exact part every approximate method shares (the rebuild) and that TRU and
    ``rebuild-reset`` extend with the reset of users/items whose whole history is deleted.
    """
    model = clone_model(ctx.original)
    model.to(torch.device(ctx.device))
    model.see_retain(ctx.applied.retain.train, ctx.applied.deleted_items)
    log: dict[str, Any] = {"rebuilt_graph": True, "reset_users": 0, "reset_items": 0}
    if reset:
        model.reset_rows(ctx.applied.deleted_users, ctx.applied.deleted_items, seed=ctx.seed + 7919)
        log["reset_users"] = int(len(ctx.applied.deleted_users))
        log["reset_items"] = int(len(ctx.applied.deleted_items))
    return model, log


# ----- registry ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodSpec:
    cls: type[UnlearnMethod]
    config_cls: type
    preset: dict[str, Any]
    summary: str
    #: setting → values the selection rule tries (empty: a one-point grid, the defaults)
    search: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    #: the searched settings act only through the work the call logs (``steps``, ``hvp_calls``): a
    #: candidate that did none is every candidate, and the selection stops there. Declared, not assumed —
    #: a plug-in's setting may act without a logged step
    search_acts_through_work: bool = False


METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, cls: type[UnlearnMethod], config_cls: type, summary: str,
                    preset: dict[str, Any] | None = None,
                    search: dict[str, list[Any] | tuple[Any, ...]] | None = None,
                    search_acts_through_work: bool = False) -> None:
    """Register ``name``; ``search`` keys must be fields of ``config_cls`` (checked here, not at selection)."""
    known = {f.name for f in fields(config_cls)}
    for key in (preset or {}).keys() | (search or {}).keys():
        if key not in known:
            raise ValueError(f"method {name!r}: {key!r} is not a {config_cls.__name__} field")
    METHODS[name] = MethodSpec(cls=cls, config_cls=config_cls, preset=dict(preset or {}), summary=summary,
                               search={k: tuple(v) for k, v in (search or {}).items()},
                               search_acts_through_work=search_acts_through_work)


def _ensure_loaded() -> None:
    import mmunlearn.unlearn  # noqa: F401  (its __init__ registers the built-in methods)


def method_names() -> list[str]:
    _ensure_loaded()
    return list(METHODS)


def method_spec(name: str) -> MethodSpec:
    _ensure_loaded()
    if name not in METHODS:
        raise InputError(f"unknown unlearning method {name!r}; available: {', '.join(METHODS)}")
    return METHODS[name]


def method_config(name: str, *layers: tuple[str, dict[str, Any]]) -> Any:
    """Defaults of method ``name`` (preset included) overridden by each ``(where, mapping)`` layer."""
    spec = method_spec(name)
    return build(spec.config_cls, (f"preset of {name}", spec.preset), *layers)


def build_method(name: str, config: Any | None = None, **overrides: Any) -> UnlearnMethod:
    """A ready-to-run method; ``config`` replaces the default (preset applied), ``overrides`` patch it."""
    spec = method_spec(name)
    cfg = config if config is not None else method_config(name)
    if overrides:
        cfg = replace(cfg, **overrides)
    return spec.cls(cfg, name=name)


def seeded_rng(ctx: UnlearnContext, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([ctx.seed, salt])


Callback = Callable[[dict[str, Any]], None]

__all__ = ["UnlearnContext", "UnlearnResult", "UnlearnMethod", "start_from_original", "register_method",
           "method_names", "method_spec", "method_config", "build_method", "METHODS", "MethodSpec", "seeded_rng"]
