"""What ``mmunlearn unlearn`` does: checkpoint + request → unlearned child checkpoint + ledger line.

Order of operations (crash safety): load and validate everything first (nothing written); take the
request lock (one process per parent and request) and the child folder's lock; refuse a request already
processed on this parent unless forced; run the method; write the child into a staging folder beside
``--out``; swap it in and append the ledger line — and if the append fails, swap it back out (the run a
``--force`` replaced comes back), so the ledger never misses a child nor points at another model. A
forced overwrite of a child is recorded in the new entry (``overwrote``: path and old weights hash). The
parent checkpoint is never modified (only its ledger and its ``.locks`` folder are written).

The child's metadata records its lineage — parent weights hash and path, request hash, method, config,
seed — and the *cumulative* request against the base dataset, so ``load_data_and_model(child)`` rebuilds
exactly the retain data it was unlearned on.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmunlearn.checkpoint import Checkpoint, load_checkpoint, read_meta, save_checkpoint
from mmunlearn.config import build, load_config_file
from mmunlearn.data.requests import ForgetRequest, apply_request, load_request
from mmunlearn.errors import InputError
from mmunlearn.evaluate.forgetting import utility_users
from mmunlearn.evaluate.ranking import evaluate_split
from mmunlearn.io import file_lock, swapped_in
from mmunlearn.train.trainer import TrainConfig
from mmunlearn.unlearn.base import UnlearnContext, method_config
from mmunlearn.workflow import ledger
from mmunlearn.workflow.request import run_method

#: test hook: seconds to sleep right before the unlearning call (lets a test kill the process mid-run)
PAUSE_ENV = "MMUNLEARN_UNLEARN_PAUSE"


def progress_dir(out: Path) -> Path:
    """Where a method keeps resumable progress for the child ``out`` (sharded methods: per-shard markers):
    beside the child, since the child folder itself is only swapped in once complete."""
    return out.parent / f".{out.name}.progress"


@dataclass
class UnlearnReport:
    child: Path
    method: str
    seconds: float
    metrics: dict[str, Any]
    entry: dict[str, Any]
    log: dict[str, Any] = field(default_factory=dict)


def load_run(run_dir: Path, device: str = "cpu") -> Checkpoint:
    """A run folder's model and dataset (via ``pipeline.load_data_and_model`` when it has a data spec)."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    if "data_spec" in meta:
        from mmunlearn.pipeline import load_data_and_model

        return load_data_and_model(run_dir, device=device)
    from mmunlearn.data.registry import load_dataset  # runs saved without a data spec

    name = meta["dataset"].get("source") or meta["dataset"].get("name")
    if not isinstance(name, str):
        raise InputError(f"{run_dir / 'meta.json'}: corrupt metadata: no 'data_spec' and no dataset name/source")
    data = load_dataset(name)
    return load_checkpoint(run_dir, data, device=device)


def unlearn_checkpoint(run_dir: Path, request_path: Path, method: str, out: Path, *, device: str = "cpu",
                       config_file: Path | None = None, overrides: dict[str, Any] | None = None, seed: int = 0,
                       force: bool = False, select: bool = False, show_progress: bool = False) -> UnlearnReport:
    run_dir, out = Path(run_dir), Path(out)
    if out.resolve() == run_dir.resolve():
        raise InputError(f"--out {out}: must differ from the checkpoint folder (the parent is never modified)")
    _refuse_existing(out, force)
    parent = load_run(run_dir, device=device)
    request = load_request(request_path)
    applied = apply_request(parent.data, request)  # validates (ids, pairs, dataset fingerprint)
    file_cfg = load_config_file(config_file)
    section = dict(file_cfg.get("unlearn", {}))
    method_config(method, (f"{config_file}:[unlearn]", section), ("--set", overrides or {}))  # validate early
    fixed = {**section, **(overrides or {})}
    # one process per (parent, request) and per child folder from the duplicate check to the ledger line
    with ledger.request_lock(run_dir, request.hash), \
            file_lock(out.parent / f".{out.name}.lock", what=f"--out {out}", wait=False):
        previous = ledger.find_entry(run_dir, request.hash, parent.hash)
        if previous is not None and not force:
            raise InputError(f"request {request.hash[:12]} was already processed on this checkpoint "
                             f"({previous.get('time')}, method {previous.get('method')}, child "
                             f"{ledger._field(previous, 'child', 'path')}); refusing to repeat it "
                             f"(pass --force to redo)")
        _refuse_existing(out, force)  # another process may have written it meanwhile
        return _unlearn_locked(run_dir, parent, request, applied, method, fixed, out, device=device, seed=seed,
                               select=select, show_progress=show_progress, forced=previous is not None)


def _refuse_existing(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    if (out / "meta.json").is_file() and not force:
        raise InputError(f"--out {out}: already holds a checkpoint; choose another folder or pass --force")


def _unlearn_locked(run_dir: Path, parent: Checkpoint, request: ForgetRequest, applied: Any, method: str,
                    fixed: dict[str, Any], out: Path, *, device: str, seed: int, select: bool, show_progress: bool,
                    forced: bool) -> UnlearnReport:
    meta = parent.meta
    tcfg = build(TrainConfig, ("parent train_config", meta["train_config"])) if meta.get("train_config") \
        else TrainConfig()
    ctx = UnlearnContext(original=parent.model, applied=applied, model_name=meta["model"],
                         model_config=parent.model.config, train_config=tcfg, seed=seed, device=device,
                         show_progress=show_progress, work_dir=progress_dir(out))
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    print(f"unlearning: {method} on {applied.counts()['forget_pairs']} deleted pairs", flush=True)
    if pause > 0:
        time.sleep(pause)
    run = run_method(method, ctx, fixed=fixed, select=select)
    result, cfg = run.result, run.config
    selection = run.selection if select else None
    metrics = summarise(result.model, ctx, getattr(cfg, "item_reference", None))
    metrics["seconds"] = result.seconds
    cumulative = ForgetRequest.from_dict(meta["request"]).merged_with(request) if meta.get("request") else request
    lineage = {"parent_path": str(run_dir.resolve()), "parent_hash": parent.hash, "request_hash": request.hash,
               "method": method, "config": asdict(cfg), "seed": seed, "selection": selection}
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        child_meta = save_checkpoint(
            stage, result.model, applied.retain, model_config=parent.model.config,
            train_config=tcfg if meta.get("train_config") else None, metrics=metrics,
            extra={"lineage": lineage, "request": cumulative.to_dict(),
                   "data_spec": meta.get("data_spec") or {"dataset": meta["dataset"]["name"], "feature_seed": 0,
                                                          "modalities": []},
                   "unlearn": {"method": method, "seconds": result.seconds, "log": result.log,
                               "counts": applied.counts()}})
        overwrote = _overwritten(out)
        entry = ledger.make_entry(request=request, counts=applied.counts(), method=method, config=asdict(cfg),
                                  seed=seed, parent_path=run_dir, parent_hash=parent.hash, child_path=out,
                                  child_hash=child_meta["weights_sha256"], seconds=result.seconds,
                                  metrics=metrics, forced=forced, overwrote=overwrote)
        if "retrained_shards" in result.log:  # sharded exact methods: which shards the deletion retrained
            entry["shards"] = {k: result.log.get(k) for k in ("shards", "partition", "retrained_shards",
                                                              "resumed_shards", "untouched_shards", "shard_seconds",
                                                              "shard_seconds_total", "aggregator_seconds")}
        entry = _swap_in_and_record(stage, out, run_dir, entry)
        shutil.rmtree(progress_dir(out), ignore_errors=True)  # the child and its ledger line exist now
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return UnlearnReport(child=out, method=method, seconds=result.seconds, metrics=metrics, entry=entry,
                         log=result.log)


def _overwritten(out: Path) -> dict[str, Any] | None:
    """What a forced run replaces at ``out`` (its weights hash), recorded in the new ledger entry."""
    if not (out / "meta.json").is_file():
        return None
    try:
        old = read_meta(out)
    except InputError:
        return {"path": str(out.resolve()), "hash": None, "note": "unreadable metadata"}
    return {"path": str(out.resolve()), "hash": old["weights_sha256"]}


def _swap_in_and_record(stage: Path, out: Path, run_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Move the staged child to ``out`` and append its ledger entry; undo the move if the append fails.

    The child the ledger records is the child at ``out``: a failed append restores whatever was at
    ``out`` before (nothing, or the run a ``--force`` was replacing), so no unrecorded child is left.
    """
    try:
        with swapped_in(stage, out):
            written = ledger.append_entry(run_dir, entry)
    except (OSError, InputError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise InputError(f"{ledger.ledger_path(run_dir)}: cannot append the ledger entry ({why}); the "
                         f"child was not kept") from None
    return written


def summarise(model: torch.nn.Module, ctx: UnlearnContext,
              item_reference: str | None = None) -> dict[str, Any]:
    """Valid utility and the retrain-free forgetting proxy (what may be looked at without Retrain).

    ``item_reference`` is the reference the method aimed at (TRU's setting; the targets' default when
    None): a proxy built on another reference would report a method that hit its own target as off it,
    and a stream's drift budget would act on that (docs/BENCHMARKS.md §9l)."""
    from mmunlearn.unlearn.targets import TargetConfig, build_targets
    from mmunlearn.unlearn.tru.exact import exact_part

    applied = ctx.applied
    users = utility_users(applied)
    valid = evaluate_split(model, applied.retain, "valid", ks=(20,), users=users)
    ref, _ = exact_part(ctx)
    target_cfg = TargetConfig(item_reference=item_reference or TargetConfig.item_reference)
    target = build_targets(ref, applied, target_cfg, seed=ctx.seed)
    pct = target.percentiles(model)
    return {"valid_recall@20": valid["recall@20"], "valid_ndcg@20": valid["ndcg@20"],
            "proxy_pct_mean": float(np.mean(pct)), "proxy_target_mean": float(np.mean(target.target)),
            "proxy_gap": float(np.mean(pct) - np.mean(target.target)),
            "proxy_item_reference": target_cfg.item_reference,
            "forget_pairs": int(applied.forget.nnz)}


__all__ = ["unlearn_checkpoint", "load_run", "summarise", "UnlearnReport", "PAUSE_ENV"]
