"""Planted study (issue #11, part 3): does TRU's branch-wise scaling matter when one modality carries
the signal and the other is noise?

Writes two planted dataset folders (image = signal / text = noise, and the mirror) with
``data.synthetic.one_signal_modality``; then run the grid on them, e.g.

    .venv/bin/python scripts/planted_scaling_study.py --out runs/planted
    .venv/bin/mmunlearn bench run --datasets runs/planted/image-signal,runs/planted/text-signal \\
        --backbones mgcn --regimes interaction,item --methods tru,tru-no-scaling --seeds 0,1,2 \\
        --out results/planted-scaling --threads 1

and read `tru` against `tru-no-scaling` in results/planted-scaling/results.md.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from mmunlearn.data.interactions import write_dataset_folder
from mmunlearn.data.synthetic import generate, one_signal_modality


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0, help="seed of the planted generator")
    ap.add_argument("--users", type=int, default=600)
    ap.add_argument("--items", type=int, default=400)
    args = ap.parse_args()
    for signal, noise in (("image", "text"), ("text", "image")):
        cfg = one_signal_modality(signal, noise=noise, n_users=args.users, n_items=args.items, seed=args.seed)
        data = replace(generate(cfg), name=f"planted-{signal}-signal")
        path = write_dataset_folder(data, args.out / f"{signal}-signal",
                                    {"planted": {"signal": signal, "noise": noise, "seed": args.seed}})
        print(path, f"{data.n_users}x{data.n_items}, train {data.train.nnz}:",
              "; ".join(m.describe() for m in data.modalities.values()))


if __name__ == "__main__":
    main()
