"""Where one TRU call spends its CPU time, on a finished grid's cell (same original, request and config).

    .venv/bin/python scripts/profile_tru.py results/grid-baby-lightgcn-int-cpu --dataset baby \
        --backbone lightgcn --regime interaction --seed 1

Loads the group's cached artefacts (nothing is trained), reruns TRU with the configuration the cell chose,
once to warm up and once under cProfile, and prints the CPU seconds and the top functions by cumulative
time. Needs the folder's models/ (not committed).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--regime", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from mmunlearn.bench.grid import Cell, load_group
    from mmunlearn.unlearn import build_method, method_config

    group = load_group(args.results, args.dataset, args.backbone, args.regime, args.seed)
    cell = json.loads(Cell(args.dataset, args.backbone, args.regime, args.seed, "tru").path(args.results).read_text())
    method = build_method("tru", method_config("tru", ("the cell's chosen config", cell["log"]["config"])))
    start = time.process_time()
    res = method.run(group.ctx)
    print(f"warm-up call: {time.process_time() - start:.2f} CPU s, {res.log['steps']} push steps")
    profile = cProfile.Profile()
    profile.enable()
    method.run(group.ctx)
    profile.disable()
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
