"""A compact Markdown table (mean ± std over seeds) of chosen columns from grid results folders.

The tables in docs/BENCHMARKS.md are printed by this script from each folder's ``results.csv`` (what
``mmunlearn bench report`` writes), so no figure is copied by hand:

    .venv/bin/python scripts/summary_table.py results/grid-baby-mgcn-influence \\
        --methods ref-retrain-noise,tru,rebuild-reset,ifru,scif --columns gap,ks,ndcg@20_vs_retrain,seconds,speedup

``--seeds`` keeps some seeds only (a method's design seeds apart from its held-out ones); the column
``abs_gap`` is the mean of |gap| per seed, which a mean gap hides when seeds miss on both sides.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

LABELS = {"ref-retrain": "Retrain", "ref-retrain-noise": "Retrain, 2nd seed", "ref-original": "Original"}
DERIVED = {"abs_gap": lambda r: abs(float(r["gap"])) if r.get("gap") not in (None, "") else None}
FORMATS = {"gap": "{:+.3f}", "abs_gap": "{:.3f}", "ks": "{:.3f}", "ndcg@20_vs_retrain": "{:.3f}", "seconds": "{:.1f}",
           "speedup": "{:.0f}", "mia_member_rate": "{:.3f}", "forget_recall@20": "{:.3f}"}


def read_rows(folders: list[Path]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for folder in folders:
        path = folder / "results.csv"
        if not path.is_file():
            raise SystemExit(f"error: {path} missing (run `mmunlearn bench report {folder}` first)")
        with path.open(newline="") as fh:
            rows += list(csv.DictReader(fh))
    return rows


def cell(values: list[float], fmt: str) -> str:
    if not values:
        return "–"
    text = fmt.format(float(np.mean(values)))
    return text if len(values) == 1 else f"{text} ± {fmt.format(float(np.std(values, ddof=1))).lstrip('+')}"


def table(rows: list[dict[str, str]], methods: list[str], columns: list[str]) -> str:
    by: dict[tuple[str, str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    seeds: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for r in rows:
        key = (r["dataset"], r["backbone"], r["regime"], r["method"])
        seeds[key].add(r["seed"])
        for c in columns:
            value = DERIVED[c](r) if c in DERIVED else (float(r[c]) if r.get(c) not in (None, "") else None)
            if value is not None:
                by[key][c].append(value)
    groups = sorted({k[:3] for k in by}, key=lambda k: (k[0], k[1], ("user", "item", "interaction").index(k[2])
                                                          if k[2] in ("user", "item", "interaction") else 9))
    lines = ["| dataset | backbone | regime | method | seeds | " + " | ".join(columns) + " |",
             "|---|---|---|---|---:|" + "---:|" * len(columns)]
    for g in groups:
        for m in methods:
            key = (*g, m)
            if key not in by:
                continue
            cells = [cell(by[key][c], FORMATS.get(c, "{:.4f}")) for c in columns]
            lines.append(f"| {g[0]} | {g[1]} | {g[2]} | {LABELS.get(m, m)} | {len(seeds[key])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", type=Path, nargs="+")
    ap.add_argument("--methods", required=True, help="comma-separated, in row order (ref-retrain-noise, ...)")
    ap.add_argument("--columns", default="gap,ks,ndcg@20_vs_retrain,seconds,speedup")
    ap.add_argument("--seeds", default="", help="comma-separated seeds to keep (default: all)")
    args = ap.parse_args()
    rows = read_rows(args.folders)
    if args.seeds:
        keep = set(args.seeds.split(","))
        rows = [r for r in rows if r["seed"] in keep]
    print(table(rows, args.methods.split(","), args.columns.split(",")))


if __name__ == "__main__":
    main()
