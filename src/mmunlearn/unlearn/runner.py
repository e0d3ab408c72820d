"""What ``mmunlearn unlearn`` does: checkpoint + request → unlearned child checkpoint + ledger line.

Order of operations (crash safety): load and validate everything first (nothing written); refuse a
request already processed on this parent unless forced; run the method; write the child checkpoint to
its own folder (``meta.json`` last, so an interrupted save leaves a folder that is refused on load);
append the ledger line to the parent's ledger last. The parent checkpoint is never modified.

The child's metadata records its lineage — parent weights hash and path, request hash, method, config,
seed — and the *cumulative* request against the base dataset, so ``load_data_and_model(child)`` rebuilds
exactly the retain data it was unlearned on.
"""

from __future__ import annotations

import os
import shutil
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
from mmunlearn.train.trainer import TrainConfig
from mmunlearn.unlearn import ledger
from mmunlearn.unlearn.base import UnlearnContext, build_method, method_config

#: test hook: seconds to sleep right before the unlearning call (lets a test kill the process mid-run)
PAUSE_ENV = "MMUNLEARN_UNLEARN_PAUSE"
#: where a method keeps resumable progress inside the child folder (sharded methods: per-shard markers)
PROGRESS_DIR = ".progress"


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

    data = load_dataset(meta["dataset"].get("source") or meta["dataset"]["name"])
    return load_checkpoint(run_dir, data, device=device)


def unlearn_checkpoint(run_dir: Path, request_path: Path, method: str, out: Path, *, device: str = "cpu",
                       config_file: Path | None = None, overrides: dict[str, Any] | None = None, seed: int = 0,
                       force: bool = False, select: bool = False, show_progress: bool = False) -> UnlearnReport:
    run_dir, out = Path(run_dir), Path(out)
    if out.resolve() == run_dir.resolve():
        raise InputError(f"--out {out}: must differ from the checkpoint folder (the parent is never modified)")
    if (out / "meta.json").is_file() and not force:
        raise InputError(f"--out {out}: already holds a checkpoint; choose another folder or pass --force")
    parent = load_run(run_dir, device=device)
    request = load_request(request_path)
    applied = apply_request(parent.data, request)  # validates (ids, pairs, dataset fingerprint)
    previous = ledger.find_entry(run_dir, request.hash, parent.hash)
    if previous is not None and not force:
        raise InputError(f"request {request.hash[:12]} was already processed on this checkpoint "
                         f"({previous.get('time')}, method {previous.get('method')}, child "
                         f"{previous.get('child', {}).get('path')}); refusing to repeat it (pass --force to redo)")
    file_cfg = load_config_file(config_file)
    section = dict(file_cfg.get("unlearn", {}))
    cfg = method_config(method, (f"{config_file}:[unlearn]", section), ("--set", overrides or {}))
    meta = parent.meta
    tcfg = build(TrainConfig, ("parent train_config", meta["train_config"])) if meta.get("train_config") \
        else TrainConfig()
    ctx = UnlearnContext(original=parent.model, applied=applied, model_name=meta["model"],
                         model_config=parent.model.config, train_config=tcfg, seed=seed, device=device,
                         show_progress=show_progress, work_dir=out / PROGRESS_DIR)
    selection = None
    if select:
        from mmunlearn.unlearn.selection import select_config

        cfg, selection = select_config(method, ctx)
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    print(f"unlearning: {method} on {applied.counts()['forget_pairs']} deleted pairs", flush=True)
    if pause > 0:
        time.sleep(pause)
    result = build_method(method, cfg).run(ctx)
    metrics = summarise(result.model, ctx)
    metrics["seconds"] = result.seconds
    cumulative = ForgetRequest.from_dict(meta["request"]).merged_with(request) if meta.get("request") else request
    lineage = {"parent_path": str(run_dir), "parent_hash": parent.hash, "request_hash": request.hash,
               "method": method, "config": asdict(cfg), "seed": seed, "selection": selection}
    child_meta = save_checkpoint(
        out, result.model, applied.retain, model_config=parent.model.config,
        train_config=tcfg if meta.get("train_config") else None, metrics=metrics,
        extra={"lineage": lineage, "request": cumulative.to_dict(),
               "data_spec": meta.get("data_spec") or {"dataset": meta["dataset"]["name"], "feature_seed": 0,
                                                      "modalities": []},
               "unlearn": {"method": method, "seconds": result.seconds, "log": result.log,
                           "counts": applied.counts()}})
    entry = ledger.make_entry(request=request, counts=applied.counts(), method=method, config=asdict(cfg),
                              seed=seed, parent_path=run_dir, parent_hash=parent.hash, child_path=out,
                              child_hash=child_meta["weights_sha256"], seconds=result.seconds, metrics=metrics,
                              forced=previous is not None)
    if "retrained_shards" in result.log:  # sharded exact methods: which shards the deletion retrained
        entry["shards"] = {k: result.log.get(k) for k in ("shards", "partition", "retrained_shards",
                                                          "resumed_shards", "untouched_shards", "shard_seconds",
                                                          "shard_seconds_total", "aggregator_seconds")}
    ledger.append_entry(run_dir, entry)
    shutil.rmtree(out / PROGRESS_DIR, ignore_errors=True)  # the child and its ledger line exist now
    return UnlearnReport(child=out, method=method, seconds=result.seconds, metrics=metrics, entry=entry,
                         log=result.log)


def summarise(model: torch.nn.Module, ctx: UnlearnContext) -> dict[str, Any]:
    """Valid utility and the retrain-free forgetting proxy (what may be looked at without Retrain)."""
    from mmunlearn.unlearn.targets import build_targets
    from mmunlearn.unlearn.tru.exact import exact_part

    applied = ctx.applied
    users = utility_users(applied)
    valid = evaluate_split(model, applied.retain, "valid", ks=(20,), users=users)
    ref, _ = exact_part(ctx)
    target = build_targets(ref, applied, seed=ctx.seed)
    pct = target.percentiles(model)
    return {"valid_recall@20": valid["recall@20"], "valid_ndcg@20": valid["ndcg@20"],
            "proxy_pct_mean": float(np.mean(pct)), "proxy_target_mean": float(np.mean(target.target)),
            "proxy_gap": float(np.mean(pct) - np.mean(target.target)),
            "forget_pairs": int(applied.forget.nnz)}


__all__ = ["unlearn_checkpoint", "load_run", "summarise", "UnlearnReport", "PAUSE_ENV"]
