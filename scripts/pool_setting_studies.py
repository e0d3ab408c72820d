"""Pool several ``tru_setting_study.py`` outputs (pair-rows.json) into one per-seed comparison of two values.

Prints, per seed, what the selection saw (valid NDCG@20 ÷ rebuild's, proxy gap) and the test figures read
after it, then the pooled summary the `pair_rows` default was decided on (docs/BENCHMARKS.md §9i):

    .venv/bin/python scripts/pool_setting_studies.py docs/results/pair-rows-sports-text-mgcn{,-s1,-s2} \\
        docs/results/pair-rows-baby-lightgcn-valid/{seeds-0-1,seed-2} docs/results/pair-rows-clothing-mgcn-s{1,2} \\
        docs/results/pair-rows-baby-mgcn-valid/seed-{0,1,2}
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("studies", nargs="+", type=Path, help="folders holding a pair-rows.json")
    ap.add_argument("--a", default="both", help="the value compared against (default both)")
    ap.add_argument("--b", default="user", help="the candidate value (default user)")
    args = ap.parse_args()
    keys = ("valid_ndcg@20_vs_rebuild", "proxy_gap", "ndcg@20_vs_retrain", "gap", "ks", "mia_member_rate")
    rows = []
    for folder in args.studies:
        path = folder / "pair-rows.json"
        if not path.is_file():
            raise SystemExit(f"error: {path} missing (a tru_setting_study.py output folder is needed)")
        for g in json.loads(path.read_text(encoding="utf-8"))["groups"]:
            a, b = g["rows"][args.a], g["rows"][args.b]
            rows.append([a[k] for k in keys] + [b[k] for k in keys] + [a["mia_member_rate_retrain"]])
            print(f"{g['dataset']}/{g['backbone']}/s{g['seed']}: valid {a[keys[0]]:.3f} -> {b[keys[0]]:.3f}, "
                  f"proxy {a['proxy_gap']:.4f} -> {b['proxy_gap']:.4f}; test N@20/RT {a[keys[2]]:.3f} -> "
                  f"{b[keys[2]]:.3f}, gap {a['gap']:+.3f} -> {b['gap']:+.3f}, KS {a['ks']:.3f} -> {b['ks']:.3f}")
    x = np.array(rows, dtype=float)
    n = len(keys)
    print(f"{len(x)} seeds: valid higher for {args.b} on {int((x[:, n] >= x[:, 0]).sum())}; proxy gap of {args.b} at most "
          f"{(x[:, n + 1] - x[:, 1]).max():+.4f} from {args.a}'s (range {x[:, [1, n + 1]].min():.4f}-"
          f"{x[:, [1, n + 1]].max():.4f}); test N@20/RT {x[:, 2].mean():.3f} -> {x[:, n + 2].mean():.3f} (higher on "
          f"{int((x[:, n + 2] > x[:, 2]).sum())}); | |gap| change | <= {np.abs(np.abs(x[:, n + 3]) - np.abs(x[:, 3])).max():.3f}; "
          f"KS change {(x[:, n + 4] - x[:, 4]).min():+.3f} to {(x[:, n + 4] - x[:, 4]).max():+.3f}; "
          f"{args.b}'s member rate within {np.abs(x[:, n + 5] - x[:, -1]).max():.3f} of Retrain's")


if __name__ == "__main__":
    main()
