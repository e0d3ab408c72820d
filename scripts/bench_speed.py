"""Speed and peak memory of the backbones (docs/BENCHMARKS.md, "Speed and memory").

Run on an otherwise idle machine:  .venv/bin/python scripts/bench_speed.py [--threads 1 2] [--out FILE]
Each case runs in its own subprocess (peak RSS per case). Real data comes from ../shared/datasets
where present (Clothing), else the embedded Baby.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmunlearn.bench.speed import SpeedCase, measure_in_subprocess
from mmunlearn.data.registry import shared_dataset_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["lightgcn", "mgcn", "miggt"])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up epoch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("results/speed.json"))
    parser.add_argument("--no-clothing", action="store_true", help="skip the MGCN-on-Clothing memory case")
    parser.add_argument("--clothing-only", action="store_true", help="run only the MGCN-on-Clothing case")
    args = parser.parse_args()
    cases = [] if args.clothing_only else [
        SpeedCase(dataset="baby", model=m, threads=t, epochs=args.epochs, device=args.device)
        for t in args.threads for m in args.models]
    clothing = shared_dataset_path("amazon-clothing")
    if clothing is not None and not args.no_clothing:
        cases.append(SpeedCase(dataset=str(clothing), model="mgcn", threads=min(args.threads), epochs=1,
                               device=args.device, eval_passes=1))
    rows = []
    for case in cases:
        row = measure_in_subprocess(case)
        rows.append(row)
        print(f"{Path(case.dataset).name:16s} {case.model:9s} threads={case.threads} "
              f"epoch={row['epoch_seconds_median']:.2f}s eval={row['eval_seconds_median']:.2f}s "
              f"peak_rss={row['peak_rss_mib']:.0f}MiB probe={row['reference_gflops'] or 0:.0f}GFLOP/s "
              f"content={row['content']}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
