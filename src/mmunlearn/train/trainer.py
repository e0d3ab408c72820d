"""The BPR training loop with early stopping on *validation* Recall@20.

Test is never looked at here: the caller evaluates test once, at the best-valid state this returns.
On Amazon data validation plateaus right after the first epochs, so early stopping may only fire after
``min_epochs``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mmunlearn.config import option
from mmunlearn.data.interactions import InteractionData
from mmunlearn.evaluate.ranking import evaluate_split
from mmunlearn.models.base import Recommender
from mmunlearn.progress import progress_bar
from mmunlearn.runtime import device_problem, resolve_device, tune_allocator
from mmunlearn.train.sampling import bpr_batches
from mmunlearn.train.snapshot import LoopState, Snapshots, snapshot_key


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = option(300, "maximum training epochs", gt=0)
    batch_size: int = option(2048, "BPR batch size (pairs)", gt=0)
    lr: float = option(1e-3, "Adam learning rate", gt=0)
    lr_decay: float = option(1.0, "multiply the learning rate by this every lr_decay_every epochs (MGCN: 0.96)", gt=0)
    lr_decay_every: int = option(50, "epochs between learning-rate decays", gt=0)
    min_epochs: int = option(30, "early stopping may not fire before this epoch (validation plateaus early)", ge=0)
    patience: int = option(20, "stop after this many evaluations without a new best valid score", gt=0)
    eval_every: int = option(1, "evaluate on valid every N epochs", gt=0)
    valid_metric: str = option("recall@20", "validation metric used for model selection")
    seed: int = option(0, "seed for initialisation and sampling", ge=0)
    device: str = option("cpu", "torch device: cpu or cuda", check=device_problem)
    threads: int = option(2, "torch intra-op threads (see docs/BENCHMARKS.md for why this default)", gt=0)


@dataclass
class TrainResult:
    best_epoch: int
    best_valid: dict[str, float]
    epochs_run: int
    seconds: float  # the whole training's, an interrupted process's part included
    history: list[dict[str, float]] = field(default_factory=list)
    #: from a snapshot: {"epoch", "seconds", "cpu_seconds"} the interrupted process(es) had done ({} if not)
    resumed: dict[str, float] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)  # legacy global RNG, only for third-party code; ours uses Generators


def configure_runtime(cfg: TrainConfig) -> torch.device:
    torch.set_num_threads(max(1, cfg.threads))
    tune_allocator()
    return resolve_device(cfg.device)


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """Fused Adam: one kernel per step instead of table-sized temporaries per step.

    MGCN's trainable 4096-d image table makes those temporaries ~0.75 GB on Clothing (23k items).
    """
    return torch.optim.Adam(model.parameters(), lr=lr, fused=True)


class _BestState:
    """The best-valid weights, kept on disk rather than as a second in-memory copy of the model."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="mmunlearn-best-")
        self.path = f"{self._dir.name}/best.safetensors"

    def save(self, model: torch.nn.Module) -> None:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, self.path)

    def restore(self, model: torch.nn.Module) -> None:
        model.load_state_dict(load_file(self.path, device="cpu"))
        self._dir.cleanup()


class ValidSelection:
    """Model selection on valid: the best epoch so far, its weights (on disk) and the patience count.

    One object serves the single-process and the data-parallel loop, so both select and stop by the
    same rule; in the data-parallel loop only rank 0 holds one.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.best_score, self.best_epoch, self.best_valid, self.since_best = -np.inf, 0, {}, 0
        self.state = _BestState()
        self.state.save(model)

    def observe(self, model: Recommender, data: InteractionData, cfg: TrainConfig, epoch: int,
                record: dict[str, float]) -> None:
        """Evaluate valid on the evaluation epochs, keep the best state; adds the score to ``record``."""
        if not (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
            return
        valid = evaluate_split(model, data, "valid", ks=(10, 20, 50))
        score = valid[cfg.valid_metric]
        record["valid_" + cfg.valid_metric] = score
        if score > self.best_score:
            self.best_score, self.best_epoch, self.best_valid, self.since_best = score, epoch, valid, 0
            self.state.save(model)
        else:
            self.since_best += 1

    def resume(self, loop: LoopState) -> None:
        """Take over a snapshot's counters (its best weights are already in ``self.state.path``)."""
        self.best_score, self.best_epoch = loop.best_score, loop.best_epoch
        self.best_valid, self.since_best = loop.best_valid, loop.since_best

    def should_stop(self, epoch: int, cfg: TrainConfig) -> bool:
        return epoch >= cfg.min_epochs and self.since_best >= cfg.patience

    def describe(self) -> str:
        return f"{self.best_score:.4f}@{self.best_epoch}"


def train_epoch(model: Recommender, optimizer: torch.optim.Optimizer, data: InteractionData,
                batch_size: int, rng: np.random.Generator, device: torch.device) -> float:
    """One shuffled pass over the training pairs; returns the mean batch loss."""
    model.train()
    total, n = 0.0, 0
    for users, pos, neg in bpr_batches(data.train, batch_size, rng):
        u = torch.as_tensor(users, device=device)
        p = torch.as_tensor(pos, device=device)
        ng = torch.as_tensor(neg, device=device)
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(u, p, ng)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
        n += 1
    # gradients are not kept past the epoch: evaluation and the best-state copy come next, and MGCN's
    # feature-table gradient alone is 377 MB on Clothing
    optimizer.zero_grad(set_to_none=True)
    return total / max(n, 1)


def train(model: Recommender, data: InteractionData, cfg: TrainConfig, *, show_progress: bool = True,
          on_epoch: Callable[[dict[str, float]], None] | None = None, snapshot_dir: Path | None = None,
          snapshot_seconds: float = 300.0) -> TrainResult:
    """Train ``model`` in place and leave it at its best-valid state.

    With ``snapshot_dir`` the loop's whole state is written there at the end of an epoch, at most once per
    ``snapshot_seconds``, and a training started with a snapshot of the same training there goes on from
    it (``snapshot.py``); removing the folder once the model is saved is the caller's part.
    """
    device = configure_runtime(cfg)
    model.to(device)
    rng = np.random.default_rng(cfg.seed)
    optimizer = make_optimizer(model, cfg.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay_every, gamma=cfg.lr_decay)
    selection = ValidSelection(model)
    snaps = Snapshots(snapshot_dir, snapshot_key(model, data, cfg) if snapshot_dir else {}, snapshot_seconds)
    loop = snaps.read(model, selection.state.path, optimizer, scheduler, rng, device)
    resumed = {} if loop is None else {"epoch": loop.epoch, "seconds": loop.seconds, "cpu_seconds": loop.cpu_seconds}
    loop = loop or LoopState()
    selection.resume(loop)
    history = loop.history
    start, cpu_start = time.perf_counter(), time.process_time()
    epoch = loop.epoch
    with progress_bar(total=cfg.epochs, desc=f"train {model.name}", enabled=show_progress) as bar:
        bar.update(loop.epoch)
        for epoch in range(loop.epoch + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            loss = train_epoch(model, optimizer, data, cfg.batch_size, rng, device)
            scheduler.step()
            record = {"epoch": epoch, "loss": loss, "train_seconds": time.perf_counter() - t0}
            selection.observe(model, data, cfg, epoch, record)
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            bar.update(1, loss=f"{loss:.4f}", best=selection.describe())
            if selection.should_stop(epoch, cfg):
                break
            if snaps.due():
                snaps.write(model, selection.state.path, optimizer, scheduler, rng, LoopState(
                    epoch=epoch, best_score=selection.best_score, best_epoch=selection.best_epoch,
                    best_valid=selection.best_valid, since_best=selection.since_best, history=history,
                    seconds=loop.seconds + time.perf_counter() - start,
                    cpu_seconds=loop.cpu_seconds + time.process_time() - cpu_start))
    optimizer.state.clear()  # Adam's moments (2× the weights) are freed before the best weights load
    selection.state.restore(model)
    return TrainResult(best_epoch=selection.best_epoch, best_valid=selection.best_valid, epochs_run=epoch,
                       seconds=loop.seconds + time.perf_counter() - start, history=history, resumed=resumed)
