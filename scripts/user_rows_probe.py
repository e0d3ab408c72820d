"""Where does a deleted user's rank come from on a finished user-regime group: its own row, or the rest of the model?

TRU resets a fully deleted user's row to a fresh draw and stops there (docs/TRU.md §1): in Retrain that user
never receives a gradient, so its row is an untrained draw too. On a backbone whose final user representation also
mixes in a model-wide term (MIG-GT's global attention over sampled items), the deleted users' rank percentile
then depends on the whole model, and two Retrains can disagree by more than a method can close. This probe tells
the two sources apart on the grid's own models, without training anything (``load_group``), by swapping rows:

- Retrain as trained, and the second-seed Retrain (the noise floor);
- Retrain with the deleted users' rows replaced by fresh draws (does *which* random row matter?) and by zeros
  (what the rest of the model alone ranks);
- the second-seed Retrain given Retrain's own rows for those users (does the row explain the two Retrains' gap?).

    .venv/bin/python scripts/user_rows_probe.py results/grid-baby-miggt-user-s3 --seed 3

(The folder must still hold ``models/``: the committed copies under docs/results do not.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from mmunlearn.bench.grid.runner import load_group
from mmunlearn.evaluate.forgetting import model_percentiles


def mean_percentile(model: torch.nn.Module, pairs: np.ndarray, exclude: sp.csr_matrix) -> float:
    model.eval()
    return float(model_percentiles(model, pairs, exclude).mean())


@torch.no_grad()
def with_rows(model: torch.nn.Module, users: torch.Tensor, rows: torch.Tensor, pairs: np.ndarray,
              exclude: sp.csr_matrix) -> float:
    """The mean percentile with ``users``' rows swapped for ``rows``; the model is restored afterwards."""
    saved = model.user_emb[users].clone()
    model.user_emb[users] = rows
    try:
        return mean_percentile(model, pairs, exclude)
    finally:
        model.user_emb[users] = saved


def probe(models: Path, dataset: str, backbone: str, seed: int, draws: int) -> dict[str, object]:
    group = load_group(models, dataset, backbone, "user", seed)
    applied = group.ctx.applied
    pairs, exclude = applied.forget_pairs, applied.retain.train
    users = torch.as_tensor(applied.deleted_users)
    retrain, noise = group.retrain, group.noise
    if not hasattr(retrain, "user_emb"):
        raise SystemExit(f"error: backbone {backbone!r} has no user_emb table to swap rows in")
    dim = retrain.user_emb.shape[1]
    fresh = []
    for k in range(draws):
        gen = torch.Generator().manual_seed(10_000 + k)
        rows = torch.randn(len(users), dim, generator=gen) / dim ** 0.5  # the backbone's initialisation scale
        fresh.append(with_rows(retrain, users, rows, pairs, exclude))
    return {
        "seed": seed, "deleted_users": int(len(users)), "deleted_pairs": int(len(pairs)),
        "retrain": mean_percentile(retrain, pairs, exclude),
        "retrain_2nd_seed": mean_percentile(noise, pairs, exclude),
        "retrain_fresh_rows": fresh,
        "retrain_zero_rows": with_rows(retrain, users, torch.zeros(len(users), dim), pairs, exclude),
        "retrain_2nd_seed_with_retrain_rows": with_rows(noise, users, retrain.user_emb[users].detach().clone(),
                                                        pairs, exclude),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, help="grid results folder that holds models/ and requests/")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--dataset", default="baby")
    parser.add_argument("--backbone", default="miggt")
    parser.add_argument("--draws", type=int, default=3, help="fresh-row draws")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(probe(args.models, args.dataset, args.backbone, args.seed, args.draws), indent=1))


if __name__ == "__main__":
    main()
