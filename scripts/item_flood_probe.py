"""Where do fully deleted items rank right after the exact part? (docs/BENCHMARKS.md §9g)

On a backbone without item rows (MIG-GT) the graph rebuild leaves a fully deleted item as an isolated
node whose representation is its raw modality-MLP output; this probe measures what that does, beside the
detached rows of the exact part's reset and the grid's own Retrain, on a results folder that still holds
its ``models/`` and ``requests/``:

    .venv/bin/python scripts/item_flood_probe.py results/grid-ml100k-miggt --dataset movielens-100k \\
        --backbone miggt --regime item --seed 0

For each model: the share of all users' top-20 slots taken by deleted items, the deleted items' mean
rank percentile over *all* users (not only their former users; ≤ 30 of them, seeded), the mean norm of the final item
embeddings of deleted vs kept items, and — for the deleted pairs' users — the mean percentile of the
deleted pairs and of a random never-positive item (the reference TRU's item target is built from), so
one can see how far that reference is from where each model puts the deleted items.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from mmunlearn.checkpoint import load_checkpoint
from mmunlearn.data.requests import AppliedRequest, apply_request, load_request
from mmunlearn.errors import InputError
from mmunlearn.evaluate.forgetting import rank_percentiles
from mmunlearn.models.base import Recommender
from mmunlearn.pipeline import load_data_and_model
from mmunlearn.unlearn.base import UnlearnContext, start_from_original
from mmunlearn.unlearn.targets import item_reference_percentiles, negative_only_items
from mmunlearn.unlearn.tru.exact import apply_item_prior


@torch.no_grad()
def describe(model: Recommender, applied: AppliedRequest, k: int = 20) -> dict[str, float]:
    deleted = applied.deleted_items
    users, items = model.final_embeddings()
    scores = users @ items.T
    top = scores.topk(k, dim=1).indices.cpu().numpy()
    kept = np.setdiff1d(np.arange(items.shape[0]), deleted)
    # share of each user's items scoring strictly above a deleted item, averaged over users and over (at
    # most 30, seeded) deleted items: each item costs a pass over the whole score matrix
    some = np.random.default_rng(0).choice(deleted, size=min(30, len(deleted)), replace=False)
    pct = np.mean([(scores > scores[:, [j]]).float().mean().item() for j in some])
    norms = items.norm(dim=1).cpu().numpy()
    never, _ = negative_only_items(applied)
    pairs = applied.forget_pairs
    ref = item_reference_percentiles(users, items, applied, pairs, never, np.random.default_rng(0), None)
    return {"top20_share": float(np.isin(top, deleted).mean()), "mean_pct_all_users": float(pct),
            "norm_deleted": float(norms[deleted].mean()), "norm_kept": float(norms[kept].mean()),
            "deleted_pairs_pct": float(rank_percentiles(users, items, pairs, applied.retain.train).mean()),
            "reference_pct": float(ref.mean()), "reference_items": len(never)}


def _with_prior(ctx: UnlearnContext) -> Recommender:
    model = start_from_original(ctx, reset=True)[0]
    apply_item_prior(model, ctx)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--dataset", required=True, help="the dataset's folder name under models/")
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--regime", default="item")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = args.results / "models" / args.dataset / args.backbone
    try:
        original = load_data_and_model(base / f"original-s{args.seed}")
        applied = apply_request(original.data, load_request(
            args.results / "requests" / args.dataset / f"{args.regime}-s{args.seed}.json"))
    except InputError as exc:
        raise SystemExit(f"error: {exc}") from None
    retrain_dirs = sorted((base / "retrain").glob(f"retrain-*-s{args.seed}"))
    if not retrain_dirs:
        raise SystemExit(f"error: no Retrain of seed {args.seed} under {base / 'retrain'} (the grid's models/ is needed)")
    retrain_dir = retrain_dirs[0]
    ctx = UnlearnContext(original=original.model, applied=applied, model_name=args.backbone,
                         model_config=original.model.config, seed=args.seed)
    models = {"original": original.model,
              "rebuild (graph only)": start_from_original(ctx, reset=False)[0],
              "rebuild-reset (detached rows)": start_from_original(ctx, reset=True)[0],
              "TRU's exact part (+ item prior)": _with_prior(ctx),
              "Retrain": load_checkpoint(retrain_dir, applied.retain).model}
    print(f"{len(applied.deleted_items)} fully deleted items; {args.dataset} {args.backbone} {args.regime} "
          f"seed {args.seed}")
    print("| model | deleted items' share of top-20 slots | their mean percentile (all users) "
          "| ‖item‖ deleted | ‖item‖ kept | deleted pairs' percentile | never-positive reference (items) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, model in models.items():
        d = describe(model, applied)
        print(f"| {name} | {d['top20_share']:.3f} | {d['mean_pct_all_users']:.3f} | {d['norm_deleted']:.2f} "
              f"| {d['norm_kept']:.2f} | {d['deleted_pairs_pct']:.3f} | {d['reference_pct']:.3f} "
              f"({d['reference_items']}) |")


if __name__ == "__main__":
    main()
