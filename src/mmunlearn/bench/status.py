"""How far a results folder is: cells per group, saved models, and trainings under way or stopped half-way.

Why: the grids of issue #11 take longer than one working session on a CPU machine and are started again and
again (``bench run`` resumes). Before starting one again a user wants to know what is left — and a model
killed mid-training leaves only a snapshot beside where it will be saved (``train/snapshot.py``), which the
results folder's report does not show. Everything here is read from the folder; nothing is written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmunlearn.bench.grid.results import config_from_record, read_grid
from mmunlearn.bench.grid.schema import Cell, dataset_key


@dataclass
class GroupStatus:
    name: str  # dataset/backbone/regime/s<seed>
    done: int
    total: int


@dataclass
class TrainingInProgress:
    """A training with a snapshot of ``epoch``: still running, or stopped since (a folder cannot tell which;
    the snapshot's age hints). A stopped one goes on from the snapshot when the grid runs again."""

    model: str  # the folder it will be saved as, relative to models/
    epoch: int
    best_epoch: int
    seconds: float
    age_seconds: float


@dataclass
class FolderStatus:
    folder: Path
    grid_hash: str
    groups: list[GroupStatus] = field(default_factory=list)
    saved_models: list[str] = field(default_factory=list)  # relative to models/
    in_training: list[TrainingInProgress] = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(g.done for g in self.groups)

    @property
    def total(self) -> int:
        return sum(g.total for g in self.groups)

    def lines(self) -> list[str]:
        out = [f"{self.folder} (grid {self.grid_hash[:12]}): {self.done} of {self.total} cells"]
        for g in self.groups:
            mark = "done" if g.done == g.total else f"{g.done}/{g.total} cells"
            out.append(f"  {g.name}: {mark}")
        if self.saved_models:
            out.append(f"  saved models ({len(self.saved_models)}): {', '.join(self.saved_models)}")
        for t in self.in_training:
            out.append(f"  in training (or stopped): {t.model}, last snapshot after epoch {t.epoch} (best {t.best_epoch}, "
                       f"{t.seconds / 60:.0f} min of training) {t.age_seconds / 60:.0f} min ago; stopped, it goes "
                       "on from there when the grid runs again")
        return out


def folder_status(folder: Path) -> FolderStatus:
    """Read ``folder`` (a ``bench run`` results folder); a folder without ``grid.json`` is a one-line error."""
    folder = Path(folder)
    record = read_grid(folder)
    cfg = config_from_record(record)
    status = FolderStatus(folder=folder, grid_hash=str(record.get("hash", "")))
    groups: dict[tuple, list[Cell]] = {g: [] for g in cfg.groups()}
    for c in cfg.cells():
        groups[(c.dataset, c.backbone, c.seed, c.regime)].append(c)
    for (d, b, s, r), cells in groups.items():
        status.groups.append(GroupStatus(name=f"{dataset_key(d)}/{b}/{r}/s{s}",
                                         done=sum(c.path(folder).is_file() for c in cells), total=len(cells)))
    models = folder / "models"
    if models.is_dir():
        status.saved_models = sorted(str(m.parent.relative_to(models)) for m in models.rglob("meta.json")
                                     if not any(p.startswith(".") for p in m.relative_to(models).parts))
        snapshots = [p for p in sorted(models.rglob("snapshot.json")) if p.parent.name.endswith(".progress")]
        status.in_training = [t for p in snapshots if (t := _in_training(p, models)) is not None]
    return status


def _in_training(snapshot: Path, models: Path) -> TrainingInProgress | None:
    """The snapshot's training; ``None`` for an unreadable one (the trainer replaces it too)."""
    try:
        loop: dict[str, Any] = json.loads(snapshot.read_text(encoding="utf-8"))["loop"]
    except (OSError, json.JSONDecodeError, KeyError):
        return None
    progress = snapshot.parent  # .<name>.progress beside where the model will be saved
    name = progress.name.removeprefix(".").removesuffix(".progress")
    return TrainingInProgress(model=str((progress.parent / name).relative_to(models)), epoch=int(loop["epoch"]),
                              best_epoch=int(loop.get("best_epoch", 0)), seconds=float(loop.get("seconds", 0.0)),
                              age_seconds=time.time() - snapshot.stat().st_mtime)


__all__ = ["FolderStatus", "GroupStatus", "TrainingInProgress", "folder_status"]
