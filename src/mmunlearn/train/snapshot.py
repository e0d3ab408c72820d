"""Training snapshots: an interrupted single-process training goes on from its last snapshot.

Why: on a CPU machine one MIG-GT or MGCN training on Sports or Clothing takes 30–70 min, and a grid
trains three per (dataset, seed). A killed job (a session that ends, a preemption, Ctrl-C) used to lose
the model it was training; the grid resumed at model granularity only. A snapshot holds everything the
loop carries from one epoch to the next — weights, the best-valid weights, Adam's moments, the LR
schedule, the torch and numpy random streams, the early-stopping counters, the history and the time
spent — so a resumed training is the same computation as an uninterrupted one, bit for bit
(``tests/train/test_snapshot.py``).

A snapshot is keyed by what the training depends on (``train/keys.py``, the key of the saved user-attack
shadow too): one written for other data or settings is removed, never resumed. It is written at the end of an epoch, at most once per ``every_seconds``, by
swapping in a complete folder (:func:`mmunlearn.io.staged_dir`), so a kill while writing leaves the
previous one. Its tensors load with ``weights_only=True``. Data-parallel training writes none.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mmunlearn.data.interactions import InteractionData
from mmunlearn.io import staged_dir
from mmunlearn.models.base import Recommender
from mmunlearn.train.keys import training_record

SNAPSHOT_FORMAT = 1


def snapshot_key(model: Recommender, data: InteractionData, cfg: Any) -> dict[str, Any]:
    """What a training's result depends on (``train/keys.py``), as it reads back from the snapshot's JSON;
    a snapshot with another key is not resumed."""
    record = {"format": SNAPSHOT_FORMAT, **training_record(data, model.name, model.config, cfg)}
    return json.loads(json.dumps(record, default=str))


@dataclass
class LoopState:
    """What the training loop carries from one epoch to the next, besides the weights and optimizer."""

    epoch: int = 0
    best_score: float = float("-inf")
    best_epoch: int = 0
    best_valid: dict[str, float] = field(default_factory=dict)
    since_best: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0


class Snapshots:
    """Writes and reads the snapshots of one training in ``folder`` (``None``: a no-op)."""

    def __init__(self, folder: Path | None, key: dict[str, Any], every_seconds: float = 300.0) -> None:
        self.folder = None if folder is None else Path(folder)
        self.key = key
        self.every_seconds = every_seconds
        self._last = time.monotonic()

    def due(self) -> bool:
        return self.folder is not None and time.monotonic() - self._last >= self.every_seconds

    def write(self, model: torch.nn.Module, best_path: str, optimizer: torch.optim.Optimizer,
              scheduler: Any, rng: np.random.Generator, state: LoopState) -> None:
        assert self.folder is not None
        with staged_dir(self.folder, force=True, what="training snapshot") as stage:
            save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                      str(stage / "model.safetensors"))
            shutil.copyfile(best_path, stage / "best.safetensors")
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "torch_rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
                       stage / "loop.pt")
            record = {"key": self.key, "numpy_rng": rng.bit_generator.state, "loop": asdict(state)}
            (stage / "snapshot.json").write_text(json.dumps(record), encoding="utf-8")
        self._last = time.monotonic()

    def read(self, model: torch.nn.Module, best_path: str, optimizer: torch.optim.Optimizer, scheduler: Any,
             rng: np.random.Generator, device: torch.device) -> LoopState | None:
        """Load the snapshot into the given objects and return the loop state, or ``None`` (no snapshot,
        or one of another training: removed, so it cannot be mistaken for this one's later)."""
        if self.folder is None or not (self.folder / "snapshot.json").is_file():
            return None
        try:
            record = json.loads((self.folder / "snapshot.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            record = {}
        if record.get("key") != self.key:
            shutil.rmtree(self.folder, ignore_errors=True)
            return None
        model.load_state_dict(load_file(str(self.folder / "model.safetensors"), device="cpu"))
        shutil.copyfile(self.folder / "best.safetensors", best_path)
        loop = torch.load(self.folder / "loop.pt", map_location=device, weights_only=True)
        optimizer.load_state_dict(loop["optimizer"])
        scheduler.load_state_dict(loop["scheduler"])
        torch.set_rng_state(loop["torch_rng"].cpu())
        if loop["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in loop["cuda_rng"]])
        rng.bit_generator.state = record["numpy_rng"]
        return LoopState(**record["loop"])


__all__ = ["LoopState", "Snapshots", "snapshot_key", "SNAPSHOT_FORMAT"]
