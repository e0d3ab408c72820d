"""The data of a grid: a named dataset, optionally a seeded user subsample, with the content the
backbone needs (synthetic only where real content is missing, and then said in every cell)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmunlearn.bench.grid.schema import GridConfig, parse_dims
from mmunlearn.data.interactions import SPLITS, InteractionData
from mmunlearn.pipeline import required_modalities


def subsample_users(data: InteractionData, n_users: int, seed: int) -> InteractionData:
    """A seeded subset of ``n_users`` users with training history, with all their interactions.

    Items that no kept user interacts with in any split are dropped and ids are compacted (content
    rows follow their items); ``n_users = 0`` or more than there are returns ``data`` unchanged.
    """
    from mmunlearn.data.features import Modality

    active = np.flatnonzero(np.diff(data.train.indptr) > 0)
    if n_users <= 0 or n_users >= len(active):
        return data
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(active, size=n_users, replace=False))
    splits = {s: data.split(s)[keep] for s in SPLITS}
    touched = np.asarray((splits["train"] + splits["valid"] + splits["test"]).sum(axis=0)).ravel() > 0
    items = np.flatnonzero(touched)
    splits = {s: m[:, items].tocsr() for s, m in splits.items()}
    mods = {k: Modality(name=m.name, values=np.asarray(m.values[items]), provenance=m.provenance,
                        source=f"{m.source} (rows of the {len(items)} kept items)")
            for k, m in data.modalities.items()}
    return InteractionData(name=f"{data.name}-u{n_users}", modalities=mods,
                           source=f"{data.source}; seeded subsample: {n_users} of {len(active)} users "
                                  f"(seed {seed}) with all their interactions, {len(items)} of "
                                  f"{data.n_items} items", **splits)


@dataclass
class GridData:
    data: InteractionData
    warnings: list[str]
    notes: list[str]

    def record(self) -> dict[str, Any]:
        d = self.data
        return {"name": d.name, "source": d.source, "n_users": d.n_users, "n_items": d.n_items,
                "train_pairs": int(d.train.nnz), "fingerprint": d.fingerprint()[:16],
                "held_out_pairs": 0 if d.held_out is None else int(len(d.held_out)),
                "modalities": {n: {"provenance": m.provenance, "dim": m.dim, "source": m.source,
                                   "synthetic": m.is_synthetic} for n, m in d.modalities.items()},
                "content_warnings": list(self.warnings), "notes": list(self.notes)}


def load_grid_data(cfg: GridConfig, dataset: str, backbone: str, model_cfg: Any) -> GridData:
    from mmunlearn.data.features import ensure_modalities
    from mmunlearn.data.registry import load_dataset

    data = load_dataset(dataset)
    notes = []
    if cfg.user_subsample:
        before = data.n_users
        data = subsample_users(data, cfg.user_subsample, cfg.subsample_seed)
        if data.n_users != before:
            notes.append(f"user subsample: {cfg.user_subsample} users (seed {cfg.subsample_seed}) of {dataset}, "
                         f"{data.n_items} items kept, {data.train.nnz} training pairs — not the full dataset")
    warnings: list[str] = []
    wanted = required_modalities(backbone, model_cfg, data)
    if wanted:
        dims = parse_dims(cfg.synthetic_dims)
        data, warnings = ensure_modalities(data, wanted, dims=dims or None, seed=cfg.feature_seed)
        if dims and warnings:
            notes.append("synthetic content widths " + ", ".join(f"{k}={v}" for k, v in dims.items())
                         + " (not MMRec's 4096/384) to fit the compute budget")
    return GridData(data=data, warnings=warnings, notes=notes)


__all__ = ["subsample_users", "GridData", "load_grid_data"]
