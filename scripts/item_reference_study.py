"""How many never-positive items does the item regime's reference need? (issue #11, part 1)

On a planted dataset with a large calibration fold (every fold item is never a training positive),
train a small backbone, sample an item-regime request, and compare the reference level (mean
percentile, over the deleted pairs' users, of a never-positive item) built from

- all never-positive items (the known reference),
- K random ones, K = 2 (Baby's situation), 5, 20, 70 — 200 draws each: mean |error| and 90 % range,
- the least popular retained items (the old fallback, ``item_reference = "least-popular"``),
- a straight line through the mean percentile of items with retained degree 1..5, read at degree 0
  (a retrain-free extrapolation that needs no never-positive item).

    .venv/bin/python scripts/item_reference_study.py --backbone lightgcn --threads 1
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from mmunlearn.data.calibration import hold_out_items
from mmunlearn.data.requests import apply_request, sample_request
from mmunlearn.data.synthetic import SyntheticConfig, generate
from mmunlearn.evaluate.forgetting import rank_percentiles
from mmunlearn.models.registry import build_model, model_config
from mmunlearn.train.trainer import TrainConfig, seed_everything, train
from mmunlearn.unlearn.base import UnlearnContext
from mmunlearn.unlearn.targets import TargetConfig, item_reference_percentiles, negative_only_items
from mmunlearn.unlearn.tru.exact import exact_part


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="lightgcn", choices=["lightgcn", "mgcn", "miggt"])
    ap.add_argument("--fold", type=float, default=0.25, help="share of items held out (the known reference)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data, fold = hold_out_items(generate(SyntheticConfig(n_users=1000, n_items=600, interactions_per_user=15,
                                                         seed=5)), args.fold, seed=args.seed)
    seed_everything(args.seed)
    cfg = model_config(args.backbone, ("study", {"dim": 32}))
    model = build_model(args.backbone, data, cfg)
    tc = TrainConfig(epochs=args.epochs, min_epochs=args.epochs, patience=999, batch_size=1024, lr=1e-2,
                     threads=args.threads, eval_every=args.epochs, seed=args.seed)
    train(model, data, tc, show_progress=False)
    applied = apply_request(data, sample_request(data, "item", 0.05, args.seed))
    ctx = UnlearnContext(original=model, applied=applied, model_name=args.backbone, model_config=cfg,
                         train_config=tc, seed=args.seed)
    scratch, _ = exact_part(ctx)
    u_emb, i_emb = scratch.final_embeddings()
    pairs = applied.forget_pairs
    never, _ = negative_only_items(applied)
    rng = np.random.default_rng(1)

    def level(items: np.ndarray) -> float:
        return float(item_reference_percentiles(u_emb, i_emb, applied, pairs, items, rng, None).mean())

    known = level(never)
    out: dict = {"backbone": args.backbone, "never_positive_items": int(len(never)), "deleted_pairs": int(len(pairs)),
                 "known_reference": known, "subsets": {}}
    for k in (2, 5, 20, 70):
        if k >= len(never):
            continue
        errs = np.array([level(rng.choice(never, size=k, replace=False)) - known for _ in range(200)])
        out["subsets"][k] = {"mean_abs_error": float(np.abs(errs).mean()),
                             "range90": [float(np.quantile(errs, 0.05)), float(np.quantile(errs, 0.95))]}
    lp, _ = negative_only_items(applied, TargetConfig(item_reference="least-popular"))
    out["least_popular_error"] = level(lp) - known
    deg = np.bincount(applied.retain.train.indices, minlength=data.n_items)
    xs, ys = [], []
    for d in range(1, 6):
        items = np.setdiff1d(np.flatnonzero(deg == d), applied.deleted_items)
        if len(items):
            xs.append(d)
            ys.append(level(items))
    slope, intercept = np.polyfit(xs, ys, 1)
    out["degree_trend"] = dict(zip(map(str, xs), ys, strict=True))
    out["degree_extrapolation_error"] = float(intercept) - known
    ou, oi = model.final_embeddings()
    out["original_deleted_pct"] = float(rank_percentiles(ou, oi, pairs, applied.retain.train).mean())
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
