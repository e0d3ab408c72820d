"""Compare unlearning methods on one request against Retrain and its second-seed noise floor.

:func:`compare_methods` is what ``scripts/unlearn_table.py`` and the benchmark run: for one applied
request it trains (or loads from ``cache_dir``) Retrain with the run seed and with a second seed, selects
each method's hyper-parameters with the retrain-free rule (``selection.py``; never test, never Retrain),
runs the selected configuration, evaluates everything with ``evaluate/forgetting.py`` and returns table
rows (dicts), also rendered as Markdown.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmunlearn.checkpoint import load_checkpoint, read_meta, save_checkpoint
from mmunlearn.data.requests import AppliedRequest
from mmunlearn.evaluate.forgetting import ForgetEval, evaluate_forgetting, result_row, user_valid_ndcg
from mmunlearn.models.base import Recommender
from mmunlearn.train.trainer import TrainConfig
from mmunlearn.unlearn.base import UnlearnContext, build_method

DEFAULT_METHODS = ("rebuild", "rebuild-reset", "finetune", "neggrad", "mmrecun", "tru", "tru-no-gate",
                   "tru-no-scaling", "tru-no-isolation")


@dataclass
class Comparison:
    rows: list[dict[str, Any]]
    request: dict[str, Any]
    selection: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request, "rows": self.rows, "selection": self.selection, "logs": self.logs}


def _config_key(ctx: UnlearnContext) -> dict[str, Any]:
    from dataclasses import asdict

    train = {k: v for k, v in asdict(ctx.train_config).items() if k not in ("threads", "device", "seed")}
    return {"model": ctx.model_name, "model_config": asdict(ctx.model_config), "train_config": train}


def _cache_key(ctx: UnlearnContext) -> dict[str, Any]:
    """:func:`_config_key` as it reads back from a checkpoint's JSON metadata."""
    import json

    return json.loads(json.dumps(_config_key(ctx), default=str))


def _cache_slots(ctx: UnlearnContext, seed: int, cache_dir: Path) -> list[Path]:
    """Where a Retrain of this request and seed may be cached: the plain folder, then one suffixed with
    the configuration's digest (used when the plain one holds another configuration's model)."""
    import hashlib
    import json

    base = Path(cache_dir) / f"retrain-{ctx.applied.request.hash[:16]}-s{seed}"
    digest = hashlib.sha256(json.dumps(_config_key(ctx), sort_keys=True, default=str).encode()).hexdigest()[:8]
    return [base, base.with_name(base.name + f"-{digest}")]


def retrain_folder(ctx: UnlearnContext, seed: int, cache_dir: Path) -> Path | None:
    """The cached Retrain of ``seed`` for this request and configuration, or ``None`` (nothing is trained)."""
    key = _cache_key(ctx)
    for folder in _cache_slots(ctx, seed, cache_dir):
        if not (folder / "meta.json").is_file():
            return None
        if read_meta(folder).get("unlearn", {}).get("config_key", key) == key:
            return folder
    return None


def load_retrain(folder: Path, ctx: UnlearnContext) -> tuple[Recommender, float, dict]:
    """A cached Retrain (see :func:`retrain_folder`): model on the request's retain data, seconds, log."""
    meta = read_meta(folder)
    ck = load_checkpoint(folder, ctx.retain, device=ctx.device)
    return ck.model, float(meta["unlearn"]["seconds"]), meta["unlearn"]["log"]


def retrain_cached(ctx: UnlearnContext, seed: int, cache_dir: Path | None) -> tuple[Recommender, float, dict]:
    """Retrain with ``seed`` on the request's retain data; reuse ``cache_dir/retrain-<hash>-s<seed>``.

    A cached model is reused only if it was trained with the same backbone, model config and training
    config (threads/device aside) on the same retain data (the checkpoint's fingerprint check). A training
    killed half-way goes on from its snapshot beside the slot (``train.snapshot``) when run again.
    """
    folder = None
    if cache_dir is not None:
        found = retrain_folder(ctx, seed, cache_dir)
        if found is not None:
            return load_retrain(found, ctx)
        slots = _cache_slots(ctx, seed, cache_dir)
        folder = next((f for f in slots if not (f / "meta.json").is_file()), slots[-1])
    progress = None if folder is None else folder.parent / f".{folder.name}.progress"
    sub = UnlearnContext(original=ctx.original, applied=ctx.applied, model_name=ctx.model_name,
                         model_config=ctx.model_config, train_config=ctx.train_config, seed=seed,
                         device=ctx.device, show_progress=ctx.show_progress, work_dir=progress)
    res = build_method("retrain").run(sub)
    if folder is not None:
        save_checkpoint(folder, res.model, ctx.retain, model_config=ctx.model_config,
                        train_config=ctx.train_config,
                        extra={"unlearn": {"method": "retrain", "seconds": res.seconds, "log": res.log,
                                           "request_hash": ctx.applied.request.hash,
                                           "config_key": _cache_key(ctx)}})
        shutil.rmtree(progress, ignore_errors=True)
    return res.model, res.seconds, res.log


def compare_methods(original: Recommender, applied: AppliedRequest, *, model_name: str, model_config: Any,
                    train_config: TrainConfig, methods: Sequence[str] = DEFAULT_METHODS, seed: int = 0,
                    noise_seed: int | None = None, select: bool = True, cache_dir: Path | None = None,
                    device: str = "cpu", configs: dict[str, Any] | None = None,
                    on_row: Any = None) -> Comparison:
    """Rows for every method (plus ``original``, ``retrain`` and ``retrain (seed s')``) on one request.

    ``configs`` maps a method name to a fixed config (skips selection for it); ``select=False`` runs the
    defaults. Selection uses only valid data and the retrain-free proxy.
    """
    from mmunlearn.workflow.request import NOISE_SEED_OFFSET, run_method
    from mmunlearn.workflow.selection import Selector

    # the original's valid scores are scored once here, outside every method's timer, as the grid does
    ctx = UnlearnContext(original=original, applied=applied, model_name=model_name, model_config=model_config,
                         train_config=train_config, seed=seed, device=device,
                         original_valid=user_valid_ndcg(original, applied.original))
    noise_seed = seed + NOISE_SEED_OFFSET if noise_seed is None else noise_seed
    retrain, retrain_seconds, retrain_log = retrain_cached(ctx, seed, cache_dir)
    noise, noise_seconds, _ = retrain_cached(ctx, noise_seed, cache_dir)
    ref = evaluate_forgetting(retrain, applied)
    noise_ev = evaluate_forgetting(noise, applied)
    rows: list[dict[str, Any]] = []
    logs: dict[str, Any] = {"retrain": retrain_log}
    selection: dict[str, Any] = {}

    def add(name: str, ev: ForgetEval, seconds: float, extra: dict[str, Any] | None = None) -> None:
        row = result_row(name, ev, retrain=ref, noise=noise_ev, seconds=seconds,
                         retrain_seconds=retrain_seconds, extra=extra)
        rows.append(row)
        if on_row is not None:
            on_row(row)

    add("retrain", ref, retrain_seconds, {"epochs": retrain_log.get("epochs_run")})
    add(f"retrain (seed {noise_seed})", noise_ev, noise_seconds)
    add("original (no unlearning)", evaluate_forgetting(original, applied), 0.0)
    selector = Selector(ctx) if select else None
    for name in methods:
        config = (configs or {}).get(name)
        t0 = time.perf_counter()
        run = run_method(name, ctx, config=config, select=selector is not None and config is None,
                         selector=selector)
        sel_seconds = run.selection["selection_seconds"] if config is None and selector is not None else 0.0
        res = run.result
        ev = evaluate_forgetting(res.model, applied)
        selection[name] = {**run.selection, "selection_seconds": sel_seconds,
                           "wall_seconds": time.perf_counter() - t0}
        logs[name] = res.log
        add(name, ev, res.seconds, {"config": res.log.get("config"), "selection_seconds": sel_seconds})
        del res, run
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return Comparison(rows=rows, request={"hash": applied.request.hash, "regime": applied.request.regime,
                                          "sampling": applied.request.sampling, **applied.counts()},
                      selection=selection, logs=logs)


COLUMNS = (("method", "method", "{}"), ("recall@20", "R@20", "{:.4f}"), ("ndcg@20", "N@20", "{:.4f}"),
           ("ndcg@20_vs_retrain", "N@20/RT", "{:.3f}"), ("forget_pct_mean", "pct", "{:.3f}"),
           ("gap", "gap", "{:+.3f}"), ("ks", "KS", "{:.3f}"), ("forget_recall@20", "fR@20", "{:.4f}"),
           ("seconds", "s", "{:.2f}"), ("speedup", "×RT", "{:.0f}"))


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of result rows (utility on test outside the request, forgetting vs Retrain, cost)."""
    head = "| " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    sep = "|" + "|".join("---" if k == "method" else "---:" for k, _, _ in COLUMNS) + "|"
    lines = [head, sep]
    for row in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            v = row.get(key)
            if v is None or (isinstance(v, float) and v != v) or key == "speedup" and (v == float("inf") or row.get("seconds", 0) == 0):
                cells.append("–")
            else:
                cells.append(fmt.format(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["compare_methods", "Comparison", "retrain_cached", "retrain_folder", "load_retrain", "markdown_table", "DEFAULT_METHODS"]
