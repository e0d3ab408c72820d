"""Recommendation quality of the backbones on a dataset (docs/BENCHMARKS.md, "Backbone quality").

    .venv/bin/python scripts/bench_quality.py --dataset baby --device cpu --out results/quality

Trains each backbone with its documented configuration through ``mmunlearn train`` (early stopping
on valid Recall@20, test evaluated once at the best-valid epoch) and collects valid/test metrics,
epochs and seconds into ``<out>/quality.json`` and a Markdown table ``<out>/quality.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

# Extra `mmunlearn train` flags per backbone; empty = the backbone's documented defaults
# (learning rate: LightGCN 5e-3, MGCN 1e-3, MIG-GT 1e-2; batch 2048; dim 64).
CONFIGS: dict[str, list[str]] = {"lightgcn": [], "mgcn": [], "miggt": []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="baby")
    parser.add_argument("--models", nargs="+", default=list(CONFIGS))
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--min-epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/quality"))
    args = parser.parse_args()
    rows = []
    for model in args.models:
        run = args.out / f"{model}-s{args.seed}"
        cmd = [sys.executable, "-m", "mmunlearn", "train", "--dataset", args.dataset, "--model", model,
               "--epochs", str(args.epochs), "--min-epochs", str(args.min_epochs), "--patience",
               str(args.patience), "--seed", str(args.seed), "--device", args.device, "--threads",
               str(args.threads), "--quiet", "--out", str(run), *CONFIGS[model]]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        meta = json.loads((run / "meta.json").read_text())
        m = meta["metrics"]
        rows.append({"model": model, "command": " ".join(cmd[2:]), "wall_seconds": time.perf_counter() - t0,
                     "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"],
                     "valid": m["valid"], "test": m["test"],
                     "content": {n: v["provenance"] for n, v in meta["dataset"]["modalities"].items()}})
        print(f"{model}: test R@20 {m['test']['recall@20']:.4f} N@20 {m['test']['ndcg@20']:.4f} "
              f"(best valid epoch {m['best_epoch']} of {m['epochs_run']})", flush=True)
    env = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "device": args.device,
           "python": platform.python_version()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")
    lines = ["| model | content | test R@20 | test N@20 | valid R@20 | best epoch / run |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        content = ", ".join(f"{k}: {v}" for k, v in r["content"].items()) or "none"
        lines.append(f"| {r['model']} | {content} | {r['test']['recall@20']:.4f} | {r['test']['ndcg@20']:.4f} | "
                     f"{r['valid']['recall@20']:.4f} | {r['best_epoch']} / {r['epochs_run']} |")
    (args.out / "quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
