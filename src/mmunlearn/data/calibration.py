"""A calibration fold of items held out of the graph: the item regime's retrain-free reference.

Why it exists. When an item's whole history is deleted, Retrain sees it only as a *negative*; the
retrain-free target for its pairs (``unlearn/targets.py``) is where the current model puts items it
also saw only as negatives — items that were never a training positive. Real 5-core data has almost
none (Baby: two of 7,050), so that reference rests on two items, and on MIG-GT it was 0.09 off
Retrain's percentile with no way to tell whether the two items or the idea were wrong
(docs/TRU.md, "Known limitation"). Nothing in a trained model can stand in for negative-only training
without a model of the training dynamics (docs/BENCHMARKS.md §9 gives the three attempts and their
errors on a planted case), so the fold makes such items by construction: before the original is
trained, a seeded random ``share`` of the items loses all its interactions (train, valid and test:
they are held out of the graph and of the evaluation, but stay in the catalogue with their content).
The original and every Retrain then see them only as negatives, exactly as Retrain sees a deleted item,
and the reference has as many items as one asks for (1 % of Baby = 70).

The price: the fold's interactions are not learned from (``share`` of the items' interactions), the
same for every method and for Retrain; the fold is chosen before any request and never looks at test
or at Retrain.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mmunlearn.data.interactions import SPLITS, InteractionData, write_dataset_folder
from mmunlearn.errors import InputError

FOLD_KEY = "calibration_items"


def hold_out_items(data: InteractionData, share: float, seed: int = 0) -> tuple[InteractionData, np.ndarray]:
    """``data`` without any interaction of a seeded random ``share`` of its train-active items; + the fold.

    The fold's *training* interactions are kept aside as ``held_out``: where a model ranks a never-positive
    item for the users who liked it is what Retrain does with a deleted item's pairs, and on a backbone
    whose items are their content that is far above where it ranks such an item for anyone else
    (docs/BENCHMARKS.md §9l)."""
    if not 0.0 < share < 0.5:
        raise InputError(f"calibration share must be in (0, 0.5), got {share}")
    active = np.flatnonzero(np.bincount(data.train.indices, minlength=data.n_items) > 0)
    n = max(1, int(round(share * len(active))))
    fold = np.sort(np.random.default_rng([int(seed), 4099]).choice(active, size=n, replace=False))
    keep = np.ones(data.n_items, dtype=np.float64)
    keep[fold] = 0.0
    mask = sp.diags(keep)
    splits = {}
    for s in SPLITS:
        mat = sp.csr_matrix(data.split(s) @ mask)
        mat.eliminate_zeros()
        splits[s] = mat
    source = (f"{data.source}; calibration fold: {n} items ({share:g} of the {len(active)} train-active, "
              f"seed={seed}) held out of every split")
    users, items = data.pairs("train")
    in_fold = np.isin(items, fold)
    held = np.stack([users[in_fold], items[in_fold]], axis=1)  # kept aside: the fold's likers (held_out)
    out = InteractionData(name=f"{data.name}-cal", source=source, modalities=data.modalities, held_out=held,
                          **splits)
    return out, fold


def fold_of(data: InteractionData) -> np.ndarray:
    """Items that have no interaction in any split (a held-out fold, or a catalogue item nobody used)."""
    total = data.train + data.valid + data.test
    return np.flatnonzero(np.bincount(sp.csr_matrix(total).indices, minlength=data.n_items) == 0)


def write_calibration_folder(data: InteractionData, share: float, out: Path, seed: int = 0) -> tuple[Path, int]:
    """Write ``hold_out_items(data, share, seed)`` as a dataset folder at ``out`` (atomically); + fold size."""
    held, fold = hold_out_items(data, share, seed)
    record = {"share": share, "seed": seed, "items": fold.tolist(),
              "removed": {s: int(data.split(s).nnz - held.split(s).nnz) for s in SPLITS}}
    return write_dataset_folder(held, Path(out), {FOLD_KEY: record}), int(len(fold))


__all__ = ["hold_out_items", "fold_of", "write_calibration_folder", "FOLD_KEY"]
