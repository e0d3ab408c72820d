"""Data-parallel BPR training on ``torch.distributed`` (gloo on CPU, NCCL on CUDA).

Every rank holds the whole model and graph (the backbones propagate the full graph in every step), draws
the *same* global batch permutation from the seed, and takes a disjoint part of it:

- ``split`` (default): every global batch of ``batch_size`` pairs is cut into ``world`` contiguous parts;
  rank ``r`` takes the BPR term of part ``r`` (summed, over the global batch size) plus ``1/world`` of the
  model's auxiliary term computed on the *whole* batch, and gradients are summed with one ``all_reduce``.
  The auxiliary term need not be a sum over pairs (MGCN's InfoNCE takes the batch as its negatives), so a
  part-wise auxiliary term would be a different loss; this way the summed loss is exactly one process's —
  the same optimisation (same steps, same batches), at the price of each rank scoring the whole batch
  (cheap: the full-graph propagation is replicated anyway);
- ``stack``: rank ``r`` takes whole batches ``r, r + world, ...``; a step averages ``world`` batches,
  so an epoch has ``1/world`` as many steps (a ``world``× larger effective batch).

Parameters start equal (rank 0's initial state is broadcast), every rank applies the same summed
gradient with the same optimiser, so the ranks' parameters stay identical. Rank 0 evaluates valid,
decides early stopping (broadcast to all ranks) and keeps the best state; the result is the ordinary
checkpoint of single-process training.

Launch: ``mmunlearn train ... --nproc N`` spawns N local processes (``torch.multiprocessing``, loopback
``127.0.0.1``, a rendezvous store hosted by the launcher on a port the OS picks); under ``torchrun``
(``RANK``/``WORLD_SIZE`` set) the processes join the group torchrun created and only rank 0 writes the
run folder (docs/DISTRIBUTED.md).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from mmunlearn.data.interactions import InteractionData
from mmunlearn.errors import InputError
from mmunlearn.models.base import Recommender
from mmunlearn.train.sampling import bpr_batches
from mmunlearn.train.trainer import (
    TrainConfig,
    TrainResult,
    ValidSelection,
    configure_runtime,
    make_optimizer,
)

BATCH_MODES = ("split", "stack")


@dataclass
class DistributedResult(TrainResult):
    """A :class:`TrainResult` plus what only a multi-process run knows."""

    world: int = 1
    backend: str = "gloo"
    rank_hashes: list[str] = field(default_factory=list)
    batch_mode: str = "split"


# ----- process group plumbing ------------------------------------------------------------------------
RENDEZVOUS_TIMEOUT = timedelta(minutes=10)


def backend_for(device: str) -> str:
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _entry(rank: int, fn: Callable[[int, int, Any], None], world: int, port: int, backend: str, job: Any) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=RENDEZVOUS_TIMEOUT)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=RENDEZVOUS_TIMEOUT)
    try:
        fn(rank, world, job)
        dist.barrier()  # no rank tears the group down while a peer still talks to it
    finally:
        dist.destroy_process_group()
    # The rank's work is done and written. Leave without the interpreter's teardown: a rank that had
    # finished was seen to abort on the way out ("terminate called without an active exception", a C++
    # thread still joinable at exit) in about 3 of 9 full test-suite runs, failing a run that had succeeded.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def spawn(fn: Callable[[int, int, Any], None], world: int, job: Any, backend: str = "gloo") -> None:
    """Run ``fn(rank, world, job)`` in ``world`` fresh local processes joined in one process group.

    The launcher hosts the rendezvous store, not rank 0: the OS picks its port while it is bound (a port
    probed and released first can be taken before rank 0 binds it), and the store outlives every rank's
    teardown (hosted by rank 0, a peer still tearing down could lose it). This alone did not stop the
    exit-time abort ``_entry`` now sidesteps with ``os._exit``."""
    import torch.multiprocessing as mp

    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=RENDEZVOUS_TIMEOUT)
    mp.spawn(_entry, args=(fn, world, store.port, backend, job), nprocs=world, join=True)


# ----- one rank's training loop ---------------------------------------------------------------------
def _params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Sum every gradient over the ranks in one flat buffer (a missing gradient counts as zero)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        chunk = flat[offset:offset + n].view_as(p)
        if p.grad is None:
            p.grad = chunk.clone()
        else:
            p.grad.copy_(chunk)
        offset += n


def _local_steps(train: Any, batch_size: int, rng: np.random.Generator, rank: int, world: int, mode: str):
    """This rank's ``(users, pos, neg, part, weight)`` per step, from the one global permutation.

    ``split``: the whole global batch and this rank's ``part`` of it (an index array); ``stack``: this rank's
    own batch, ``part`` None, ``weight`` its share of the step's pairs."""
    batches = list(bpr_batches(train, batch_size, rng))
    if mode == "split":
        for users, pos, neg in batches:
            yield users, pos, neg, np.array_split(np.arange(len(users)), world)[rank], 1.0 / world
    else:
        for start in range(0, len(batches), world):
            group = batches[start:start + world]
            total = sum(len(b[0]) for b in group)
            if rank < len(group):
                users, pos, neg = group[rank]
                yield users, pos, neg, None, len(users) / total
            else:  # the last step has fewer batches than ranks: this rank contributes a zero gradient
                yield users[:0], pos[:0], neg[:0], None, 0.0


def _local_loss(model: Recommender, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                part: np.ndarray | None, weight: float) -> torch.Tensor:
    """This rank's share of the step's loss; the shares of all ranks sum to the step's loss."""
    if part is None:  # stack: an ordinary loss on this rank's batch, weighted by its share of the step
        return model.loss(users, pos, neg) * weight
    terms = model.batch_terms(users, pos, neg)
    idx = torch.as_tensor(part, device=terms.pos.device)
    bpr = -torch.nn.functional.logsigmoid(terms.pos[idx] - terms.neg[idx]).sum() / len(users)
    return bpr + terms.aux * weight


def params_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def train_rank(model: Recommender, data: InteractionData, cfg: TrainConfig, *, batch_mode: str = "split",
               show_progress: bool = False) -> DistributedResult:
    """The training loop of one rank of an initialised process group; on rank 0 the model ends at its
    best-valid state (other ranks end at the last epoch's state, identical to rank 0's)."""
    from mmunlearn.progress import progress_bar

    rank, world = dist.get_rank(), dist.get_world_size()
    device = configure_runtime(cfg)
    model.to(device)
    for t in model.state_dict().values():  # equal start: rank 0's initial weights and buffers everywhere
        if t.is_floating_point() or t.dtype in (torch.int64, torch.int32):
            dist.broadcast(t.data, 0)
    params = _params(model)
    rng = np.random.default_rng(cfg.seed)
    optimizer = make_optimizer(model, cfg.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay_every, gamma=cfg.lr_decay)
    main = rank == 0
    selection = ValidSelection(model) if main else None
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    epoch = 0
    stop = torch.zeros(1, device=device)
    with progress_bar(total=cfg.epochs, desc=f"train {model.name} ×{world}", enabled=show_progress and main) as bar:
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            total, n = 0.0, 0
            for users, pos, neg, part, weight in _local_steps(data.train, cfg.batch_size, rng, rank, world,
                                                              batch_mode):
                optimizer.zero_grad(set_to_none=True)
                if len(users):
                    u, p, ng = (torch.as_tensor(x, device=device) for x in (users, pos, neg))
                    loss = _local_loss(model, u, p, ng, part, weight)
                    loss.backward()
                    total += float(loss.detach())
                _all_reduce_grads(params)
                optimizer.step()
                n += 1
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            loss_sum = torch.tensor([total], device=device)
            dist.all_reduce(loss_sum)
            record = {"epoch": epoch, "loss": float(loss_sum) / max(n, 1), "train_seconds": time.perf_counter() - t0}
            if selection is not None:
                selection.observe(model, data, cfg, epoch, record)
            history.append(record)
            bar.update(1, loss=f"{record['loss']:.4f}", best=selection.describe() if selection else "")
            if selection is not None:
                stop.fill_(float(selection.should_stop(epoch, cfg)))
            dist.broadcast(stop, 0)
            if bool(stop.item()):
                break
    optimizer.state.clear()
    own = params_hash(model)
    hashes: list[Any] = [None] * world
    dist.all_gather_object(hashes, own)
    if selection is not None:
        selection.state.restore(model)
    best_epoch, best_valid = (selection.best_epoch, selection.best_valid) if selection else (0, {})
    return DistributedResult(best_epoch=best_epoch, best_valid=best_valid, epochs_run=epoch,
                             seconds=time.perf_counter() - start, history=history, world=world,
                             backend=backend_of_group(), rank_hashes=[str(h) for h in hashes],
                             batch_mode=batch_mode)


def backend_of_group() -> str:
    return str(dist.get_backend())


# ----- the spawn launcher ----------------------------------------------------------------------------
def _dp_worker(rank: int, world: int, job: dict[str, Any]) -> None:
    from mmunlearn.models.registry import build_model

    torch.manual_seed(0)
    model = build_model(job["model_name"], job["data"], job["model_config"])
    model.load_state_dict(job["initial"])
    result = train_rank(model, job["data"], job["cfg"], batch_mode=job["batch_mode"],
                        show_progress=job["show_progress"])
    if rank == 0:
        out = Path(job["out"])
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(out / "best.safetensors"))
        torch.save({"best_epoch": result.best_epoch, "best_valid": result.best_valid,
                    "epochs_run": result.epochs_run, "seconds": result.seconds, "history": result.history,
                    "rank_hashes": result.rank_hashes, "backend": result.backend},
                   out / "result.pt")


def train_distributed(model: Recommender, data: InteractionData, cfg: TrainConfig, nproc: int, *,
                      batch_mode: str = "split", show_progress: bool = True) -> DistributedResult:
    """Train ``model`` in place on ``nproc`` local processes; it ends at its best-valid state.

    Under ``torchrun`` this process is one rank and trains in-process; otherwise ``nproc`` workers are
    spawned, each rebuilds the model from its name and config (so a plug-in backbone must be
    registered at import time of its module) and starts from ``model``'s current weights.
    """
    if batch_mode not in BATCH_MODES:
        raise InputError(f"batch mode {batch_mode!r}: expected one of {', '.join(BATCH_MODES)}")
    if launched_by_torchrun():
        if not dist.is_initialized():
            dist.init_process_group(backend_for(cfg.device))
        return train_rank(model, data, cfg, batch_mode=batch_mode, show_progress=show_progress)
    if nproc < 1:
        raise InputError(f"--nproc {nproc}: must be at least 1")
    if torch.device(cfg.device).type == "cuda" and torch.cuda.device_count() < nproc:
        raise InputError(f"--nproc {nproc} with --device cuda needs {nproc} GPUs "
                         f"(found {torch.cuda.device_count()}); NCCL needs one GPU per rank")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmunlearn-dp-") as tmp:
        initial = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        job = {"model_name": model.name, "model_config": model.config, "data": data, "cfg": cfg,
               "initial": initial, "batch_mode": batch_mode, "show_progress": show_progress, "out": tmp}
        spawn(_dp_worker, nproc, job, backend=backend_for(cfg.device))
        model.load_state_dict(load_file(str(Path(tmp) / "best.safetensors"), device="cpu"))
        info = torch.load(Path(tmp) / "result.pt", map_location="cpu", weights_only=True)
    model.to(torch.device(cfg.device))
    return DistributedResult(best_epoch=int(info["best_epoch"]), best_valid=dict(info["best_valid"]),
                             epochs_run=int(info["epochs_run"]), seconds=time.perf_counter() - start,
                             history=list(info["history"]), world=nproc, backend=str(info["backend"]),
                             rank_hashes=list(info["rank_hashes"]), batch_mode=batch_mode)


__all__ = ["train_distributed", "train_rank", "spawn", "DistributedResult", "is_main_process",
           "launched_by_torchrun", "BATCH_MODES", "params_hash"]
