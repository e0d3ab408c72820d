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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from mmunlearn.bench.grid.runner import load_group
from mmunlearn.evaluate.forgetting import model_percentiles
from mmunlearn.models.base import Recommender


def mean_percentile(model: torch.nn.Module, pairs: np.ndarray, exclude: sp.csr_matrix) -> float:
    model.eval()
    return float(model_percentiles(model, pairs, exclude).mean())


def user_tables(model: Recommender) -> dict[str, torch.nn.Parameter]:
    params = dict(model.named_parameters())
    return {n: params[n] for n, kind in model.embedding_tables().items() if kind == "user"}


@contextmanager
def rows_restored(model: Recommender, users: np.ndarray) -> Iterator[dict[str, torch.nn.Parameter]]:
    """``users``' rows of every user table may be changed inside; they are put back afterwards."""
    tables = user_tables(model)
    idx = torch.as_tensor(users, dtype=torch.long)
    saved = {n: p[idx].detach().clone() for n, p in tables.items()}
    try:
        yield tables
    finally:
        with torch.no_grad():
            for n, p in tables.items():
                p[idx] = saved[n]


@torch.no_grad()
def probe(models: Path, dataset: str, backbone: str, seed: int, draws: int) -> dict[str, object]:
    group = load_group(models, dataset, backbone, "user", seed)
    applied = group.ctx.applied
    pairs, exclude, users = applied.forget_pairs, applied.retain.train, applied.deleted_users
    retrain, noise = group.retrain, group.noise
    if not user_tables(retrain):
        raise SystemExit(f"error: backbone {backbone!r} has no user table to swap rows in")
    idx = torch.as_tensor(users, dtype=torch.long)
    fresh = []
    for k in range(draws):  # drawn as TRU's reset draws them (the backbone's own initialisation)
        with rows_restored(retrain, users):
            retrain.reset_rows(users, np.zeros(0, dtype=np.int64), seed=10_000 + k)
            fresh.append(mean_percentile(retrain, pairs, exclude))
    with rows_restored(retrain, users) as tables:
        for p in tables.values():
            p[idx] = 0.0
        zero = mean_percentile(retrain, pairs, exclude)
    retrain_tables = user_tables(retrain)
    with rows_restored(noise, users) as tables:
        for n, p in tables.items():
            p[idx] = retrain_tables[n][idx]
        swapped = mean_percentile(noise, pairs, exclude)
    return {
        "seed": seed, "deleted_users": int(len(users)), "deleted_pairs": int(len(pairs)),
        "retrain": mean_percentile(retrain, pairs, exclude),
        "retrain_2nd_seed": mean_percentile(noise, pairs, exclude),
        "retrain_fresh_rows": fresh,
        "retrain_zero_rows": zero,
        "retrain_2nd_seed_with_retrain_rows": swapped,
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
