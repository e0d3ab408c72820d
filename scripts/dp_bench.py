"""Data-parallel training (train/distributed.py) against one process: quality and seconds per epoch.

Trains the same backbone with the same config and seed(s) on 1 process and on N processes (gloo,
``split`` batches: the single-process optimisation; optionally ``stack``), and records test metrics at
the best valid epoch and the mean training seconds per epoch (rank 0's, evaluation excluded).

    .venv/bin/python scripts/dp_bench.py --dataset baby --backbone lightgcn --threads 1 \
        --out docs/results/dp-bench-baby-lightgcn.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from mmunlearn.evaluate.ranking import evaluate_split
from mmunlearn.io import atomic_write_json
from mmunlearn.models.registry import MODELS, build_model, model_config
from mmunlearn.pipeline import prepare_for_model
from mmunlearn.train.distributed import train_distributed
from mmunlearn.train.trainer import TrainConfig, seed_everything, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="baby")
    ap.add_argument("--backbone", default="lightgcn")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--modes", nargs="+", default=["split"], help="split and/or stack")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--min-epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--eval-every", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=None, help="default: the backbone's recommended lr")
    ap.add_argument("--set", dest="sets", nargs="*", default=[], help="model config key=value")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sets = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.sets)}
    mcfg = model_config(args.backbone, ("--set", sets))
    data = prepare_for_model(args.dataset, 0, args.backbone, mcfg).data
    lr = args.lr if args.lr is not None else (MODELS[args.backbone][0].recommended_lr or 1e-3)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    results.update({"command": "scripts/dp_bench.py " + " ".join(os.sys.argv[1:]),
                    "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} "
                               f"cores, torch {torch.__version__}, {args.threads} thread(s) per process",
                    "model_config": asdict(mcfg), "dataset": data.name, "lr": lr})
    done = {(r["seed"], r["nproc"], r["mode"]) for r in results["runs"]}
    for seed in args.seeds:
        cfg = TrainConfig(epochs=args.epochs, min_epochs=args.min_epochs, patience=args.patience,
                          eval_every=args.eval_every, lr=lr, seed=seed, threads=args.threads)
        for nproc, mode in [(1, "single"), *((args.nproc, m) for m in args.modes)]:
            if (seed, nproc, mode) in done:
                continue
            load0 = os.getloadavg()[0]
            print(f"[{time.strftime('%H:%M:%S')} load {load0:.1f}] seed {seed}: {nproc} process(es), {mode}", flush=True)
            seed_everything(seed)
            model = build_model(args.backbone, data, mcfg)
            t0 = time.perf_counter()
            if nproc == 1:
                res = train(model, data, cfg, show_progress=False)
                extra = {}
            else:
                res = train_distributed(model, data, cfg, nproc, batch_mode=mode, show_progress=False)
                extra = {"rank_hashes_equal": len(set(res.rank_hashes)) == 1, "backend": res.backend}
            wall = time.perf_counter() - t0
            test = evaluate_split(model, data, "test", ks=(20,))
            epochs = [h["train_seconds"] for h in res.history]
            results["runs"].append({
                "seed": seed, "nproc": nproc, "mode": mode, "best_epoch": res.best_epoch, "epochs_run": res.epochs_run,
                "test_recall@20": test["recall@20"], "test_ndcg@20": test["ndcg@20"],
                "valid_recall@20": res.best_valid.get("recall@20"),
                "seconds_per_epoch_mean": float(np.mean(epochs)),
                "seconds_per_epoch_median": float(np.median(epochs)),
                "wall_seconds": wall, "load_avg_start": load0, "load_avg_end": os.getloadavg()[0],
                "date": time.strftime("%Y-%m-%d %H:%M UTC"), **extra})
            atomic_write_json(args.out, results)
            print(json.dumps(results["runs"][-1]), flush=True)


if __name__ == "__main__":
    main()
