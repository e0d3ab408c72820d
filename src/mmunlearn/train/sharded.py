"""Training a sharded model: each shard on its own pairs (in parallel processes), then the aggregator.

Every shard is trained from a fresh initialisation with the ordinary trainer (early stopping on the
shard's valid pairs), seeded by ``shard_seed(seed, k)``, so training shard ``k`` again on the same data
and config gives the same weights. With a ``work_dir`` every finished shard is written there as
``shard-<k>.safetensors`` followed by ``shard-<k>.json`` (its *progress marker*: the shard data's
fingerprint, the training config, the seed, seconds). A marker that matches the current job means the
shard is done: an interrupted job (killed process, crash) resumes and retrains only the shards without
one. The files are also how shards trained in worker processes reach the parent.

Parallel shards: ``nproc > 1`` spawns local worker processes that join one ``torch.distributed``
process group (gloo, loopback); rank ``r`` trains the shards ``r, r + nproc, ...`` of the job and the
group's barrier marks the end. Under ``torchrun`` the same worker function serves (see
docs/DISTRIBUTED.md).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mmunlearn.data.interactions import InteractionData
from mmunlearn.evaluate.ranking import rank_metrics, split_mask
from mmunlearn.io import atomic_write, atomic_write_json
from mmunlearn.models.base import Recommender
from mmunlearn.models.sharded import ShardedRecommender
from mmunlearn.train.sampling import bpr_batches
from mmunlearn.train.trainer import TrainConfig, TrainResult, seed_everything, train

MARKER_FORMAT = "mmunlearn.shard_progress"
#: test hook: seconds to sleep after each shard's progress marker is written (lets a test kill the job)
PAUSE_ENV = "MMUNLEARN_SHARD_PAUSE"


def shard_seed(seed: int, k: int) -> int:
    return int(seed) * 1000 + 17 * (k + 1)


@dataclass
class ShardReport:
    """What a shard job did: retrained / resumed shards and each shard's training seconds."""

    trained: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    shard_seconds: dict[int, float] = field(default_factory=dict)
    shard_best: dict[int, dict[str, Any]] = field(default_factory=dict)
    wall_seconds: float = 0.0
    nproc: int = 1

    def record(self) -> dict[str, Any]:
        return {"retrained_shards": sorted(self.trained + self.resumed), "resumed_shards": sorted(self.resumed),
                "shard_seconds": {str(k): v for k, v in sorted(self.shard_seconds.items())},
                "shard_seconds_total": float(sum(self.shard_seconds.values())),
                "shards_wall_seconds": self.wall_seconds, "nproc": self.nproc,
                "shard_best": {str(k): v for k, v in sorted(self.shard_best.items())}}


def _job_key(model: ShardedRecommender, data: InteractionData, k: int, cfg: TrainConfig, seed: int) -> dict:
    shard = model.shard_data(data, k)
    return {"format": MARKER_FORMAT, "shard": k, "shard_fingerprint": shard.fingerprint(),
            "backbone": model.config.backbone, "backbone_config": asdict(model.backbone_config),
            "train_config": {k2: v for k2, v in asdict(cfg).items() if k2 not in ("threads", "device")},
            "seed": shard_seed(seed, k)}


def _marker_paths(work_dir: Path, k: int) -> tuple[Path, Path]:
    return Path(work_dir) / f"shard-{k}.safetensors", Path(work_dir) / f"shard-{k}.json"


def _finished(work_dir: Path, key: dict) -> dict | None:
    weights, marker = _marker_paths(work_dir, key["shard"])
    if not (weights.is_file() and marker.is_file()):
        return None
    try:
        done = json.loads(marker.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return done if done.get("key") == key else None


def train_one_shard(model: ShardedRecommender, data: InteractionData, k: int, cfg: TrainConfig, seed: int,
                    work_dir: Path | None = None, show_progress: bool = False) -> tuple[Recommender, dict]:
    """Train a fresh backbone for shard ``k`` of ``data``; write it + its marker to ``work_dir``."""
    s = shard_seed(seed, k)
    seed_everything(s)
    shard_data = model.shard_data(data, k)
    backbone = model.fresh_shard(data, k)
    result = train(backbone, shard_data, replace(cfg, seed=s), show_progress=show_progress)
    info = {"seconds": result.seconds, "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "best_valid": {m: result.best_valid.get(m) for m in ("recall@20", "ndcg@20")},
            "train_pairs": int(shard_data.train.nnz)}
    if work_dir is not None:
        weights, marker = _marker_paths(work_dir, k)
        state = {n: t.detach().cpu().contiguous() for n, t in backbone.state_dict().items()}
        atomic_write(weights, lambda p: save_file(state, str(p)))
        atomic_write_json(marker, {"key": _job_key(model, data, k, cfg, seed), **info})
        pause = float(__import__("os").environ.get(PAUSE_ENV, "0") or 0)
        if pause > 0:
            time.sleep(pause)
    return backbone, info


def _install(model: ShardedRecommender, k: int, backbone: Recommender) -> None:
    device = model.shard_of.device
    model.shards[k] = backbone.to(device)


def _adopt(model: Any, data: InteractionData, k: int, seed: int, work_dir: Path, done: dict[str, Any],
           report: Any, into: list[int]) -> None:
    """Install shard ``k``'s finished weights from its progress marker and record it in ``into``
    (resumed from an earlier run, or trained by a worker process)."""
    seed_everything(shard_seed(seed, k))
    backbone = model.fresh_shard(data, k)
    backbone.load_state_dict(load_file(str(_marker_paths(work_dir, k)[0]), device="cpu"))
    _install(model, k, backbone)
    into.append(k)
    report.shard_seconds[k] = float(done["seconds"])
    report.shard_best[k] = done.get("best_valid", {})


def train_shards(model: ShardedRecommender, data: InteractionData, cfg: TrainConfig, shards: list[int], *,
                 seed: int, nproc: int = 1, work_dir: Path | None = None,
                 show_progress: bool = False) -> ShardReport:
    """(Re)train ``shards`` of ``model`` on ``data`` in place; other shards are not touched at all."""
    start = time.perf_counter()
    report = ShardReport(nproc=max(1, nproc))
    tmp = None
    if work_dir is None and nproc > 1:
        tmp = tempfile.TemporaryDirectory(prefix="mmunlearn-shards-")
        work_dir = Path(tmp.name)
    todo = []
    for k in shards:
        done = _finished(work_dir, _job_key(model, data, k, cfg, seed)) if work_dir is not None else None
        if done is None:
            todo.append(k)
            continue
        _adopt(model, data, k, seed, work_dir, done, report, report.resumed)
    try:
        if todo and nproc > 1:
            _train_parallel(model, data, cfg, todo, seed=seed, nproc=nproc, work_dir=work_dir)
            for k in todo:
                done = _finished(work_dir, _job_key(model, data, k, cfg, seed))
                if done is None:
                    raise RuntimeError(f"shard worker left no finished shard {k} in {work_dir}")
                _adopt(model, data, k, seed, work_dir, done, report, report.trained)
        else:
            for k in todo:
                backbone, info = train_one_shard(model, data, k, cfg, seed, work_dir, show_progress)
                _install(model, k, backbone)
                report.trained.append(k)
                report.shard_seconds[k] = float(info["seconds"])
                report.shard_best[k] = info["best_valid"]
    finally:
        if tmp is not None:
            tmp.cleanup()
    report.wall_seconds = time.perf_counter() - start
    return report


# ----- parallel shards over torch.distributed -------------------------------------------------------------
def _train_parallel(model: ShardedRecommender, data: InteractionData, cfg: TrainConfig, todo: list[int], *,
                    seed: int, nproc: int, work_dir: Path) -> None:
    from mmunlearn.train.distributed import spawn

    world = min(nproc, len(todo))
    job = {"config": model.config, "assignment": model.assignment(), "data": data, "cfg": cfg,
           "todo": todo, "seed": seed, "work_dir": str(work_dir)}
    spawn(_shard_worker, world, job)


def _shard_worker(rank: int, world: int, job: dict[str, Any]) -> None:
    """One rank of a parallel shard job: trains its share of the shards and writes them to ``work_dir``."""
    import torch.distributed as dist

    data: InteractionData = job["data"]
    torch.set_num_threads(max(1, job["cfg"].threads))
    model = ShardedRecommender.__new__(ShardedRecommender)  # a light shell: only shard_data/fresh_shard
    _shell_init(model, data, job["config"], job["assignment"])
    for k in job["todo"][rank::world]:
        train_one_shard(model, data, k, job["cfg"], job["seed"], Path(job["work_dir"]))
    dist.barrier()


def _shell_init(model: ShardedRecommender, data: InteractionData, config: Any, assignment: np.ndarray) -> None:
    """Enough of a ShardedRecommender to cut shard data and build fresh shards (no shard is built)."""
    from mmunlearn.data.partition import partition_axis
    from mmunlearn.models.registry import model_config

    torch.nn.Module.__init__(model)
    model.n_users, model.n_items, model.config = data.n_users, data.n_items, config
    model.axis = partition_axis(config.partition)
    model.backbone_config = model_config(config.backbone, ("sharded backbone_config", config.backbone_config))
    model.register_buffer("shard_of", torch.as_tensor(assignment, dtype=torch.long))


# ----- the aggregator ----------------------------------------------------------------------------------
def train_aggregator(model: ShardedRecommender, data: InteractionData, cfg: TrainConfig, seed: int,
                     show_progress: bool = False) -> dict[str, Any]:
    """Train RecEraser's attention aggregator on ``data.train`` with the shards frozen.

    Shard embeddings are computed once (the shards do not change), so an aggregator step costs a
    gather and a K-way attention over the batch rows. Early stopping on valid Recall@20.
    """
    agg = model.aggregator
    if agg is None:
        return {"aggregator": "mean", "aggregator_seconds": 0.0}
    start = time.perf_counter()
    mc = model.config
    agg.reset(shard_seed(seed, 10_000))
    with torch.no_grad():
        was = model.training
        model.eval()
        users_all, items_all = model.shard_embeddings()
        model.train(was)
    users_all, items_all = users_all.detach(), items_all.detach()
    device = users_all.device
    opt = torch.optim.Adam(agg.parameters(), lr=mc.agg_lr)
    rng = np.random.default_rng([seed, 31337])
    mask = split_mask(data.train)
    best, best_epoch, since, best_state = -np.inf, 0, 0, None
    epoch = 0
    for epoch in range(1, mc.agg_epochs + 1):
        agg.train()
        for u, p, n in bpr_batches(data.train, cfg.batch_size, rng):
            u_t, p_t, n_t = (torch.as_tensor(x, device=device) for x in (u, p, n))
            items = torch.cat([p_t, n_t])
            ue, ie = model.aggregate(users_all[:, u_t], items_all[:, items], u_t, items)
            pe, ne = ie[: len(u)], ie[len(u):]
            pos, neg = (ue * pe).sum(-1), (ue * ne).sum(-1)
            reg = mc.agg_reg * (ue.pow(2).sum() + pe.pow(2).sum() + ne.pow(2).sum()) / (2 * len(u))
            loss = -torch.nn.functional.logsigmoid(pos - neg).mean() + reg
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        agg.eval()
        with torch.no_grad():
            ue, ie = model.aggregate(users_all, items_all)
            score = rank_metrics(ue, ie, data.valid, mask, (20,))["recall@20"]
        if score > best:
            best, best_epoch, since = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in agg.state_dict().items()}
        else:
            since += 1
            if since >= mc.agg_patience:
                break
    if best_state is not None:
        agg.load_state_dict(best_state)
    return {"aggregator": "attention", "aggregator_seconds": time.perf_counter() - start,
            "aggregator_best_epoch": best_epoch, "aggregator_epochs_run": epoch,
            "aggregator_valid_recall@20": float(best)}


def train_sharded(model: ShardedRecommender, data: InteractionData, cfg: TrainConfig, *, nproc: int = 1,
                  work_dir: Path | None = None, show_progress: bool = False) -> TrainResult:
    """Train every shard and the aggregator of a freshly built sharded model (``mmunlearn train --shards``)."""
    from mmunlearn.evaluate.ranking import evaluate_split
    from mmunlearn.train.trainer import configure_runtime

    start = time.perf_counter()
    device = configure_runtime(cfg)
    model.to(device)
    report = train_shards(model, data, cfg, list(range(model.n_shards)), seed=cfg.seed, nproc=nproc,
                          work_dir=work_dir, show_progress=show_progress)
    model.to(device)
    agg = train_aggregator(model, data, cfg, cfg.seed, show_progress)
    valid = evaluate_split(model, data, "valid", ks=(10, 20, 50))
    history = [{"shards": report.record(), **agg}]
    return TrainResult(best_epoch=0, best_valid=valid, epochs_run=0, seconds=time.perf_counter() - start,
                       history=history)


__all__ = ["train_sharded", "train_shards", "train_aggregator", "train_one_shard", "shard_seed", "ShardReport",
           "PAUSE_ENV"]
