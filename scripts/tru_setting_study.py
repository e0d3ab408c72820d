"""One TRU setting, several values, on the cached groups of a finished grid (default: the gate's scale,
percentile vs logit — docs/BENCHMARKS.md §3.2; also ``pair_rows`` both vs user, §3.7).

Every value runs under the grid's selection rule (valid utility + retrain-free proxy, never test, never
Retrain) with the setting held fixed, on the very requests, originals and Retrains the grid used, so the
only difference is that setting. Nothing is trained and nothing is written into the results folder. The
user regime is skipped: with ``reset`` on, TRU pushes no pair there (a reset user is at its target by
construction), so no push setting can matter.

    .venv/bin/python scripts/tru_setting_study.py --results results/grid-baby-mgcn --out docs/results/gate-scale-baby-mgcn
    .venv/bin/python scripts/tru_setting_study.py --results results/grid-baby-mgcn-influence \
        --setting pair_rows --values both,user --regimes interaction --out docs/results/pair-rows-baby-mgcn
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmunlearn.bench.grid import config_from_record, load_group, machine, now, read_grid
from mmunlearn.bench.report import format_mean_std, mean_std
from mmunlearn.errors import InputError
from mmunlearn.evaluate.forgetting import evaluate_forgetting, result_row
from mmunlearn.evaluate.mia import audit_forget_set, fit_membership_attack
from mmunlearn.io import atomic_write_json, atomic_write_text
from mmunlearn.workflow.selection import Selector


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def study_group(results: Path, dataset: str, backbone: str, regime: str, seed: int, method: str,
                mia_max_pairs: int, setting: str, values: list[str]) -> dict[str, Any]:
    group = load_group(results, dataset, backbone, regime, seed)
    ctx = group.ctx
    applied = ctx.applied
    attack = fit_membership_attack(ctx.original, applied.original, exclude_pairs=applied.forget_pairs,
                                   seed=seed, max_pairs=mia_max_pairs)

    def member_rate(model: Any) -> float:  # the grid's interaction-level audit of the deleted pairs
        return float(audit_forget_set(attack, model, applied.retain, applied.forget_pairs)["member_rate_forget"])

    ref = evaluate_forgetting(group.retrain, applied)
    noise = evaluate_forgetting(group.noise, applied)
    mia_retrain = member_rate(group.retrain)
    rows = {"retrain-noise": result_row("retrain-noise", noise, retrain=ref, noise=noise, seconds=0.0,
                                        retrain_seconds=group.retrain_seconds)}
    rows["retrain-noise"]["mia_member_rate"] = member_rate(group.noise)
    selector = Selector(group.ctx)
    for value in values:
        cfg, report, res = selector.select(method, fixed={setting: parse_value(value)})
        row = result_row(f"{method} ({setting} = {value})", evaluate_forgetting(res.model, applied), retrain=ref, noise=noise,
                         seconds=res.seconds, retrain_seconds=group.retrain_seconds)
        row["chosen"] = {"lr": cfg.lr, "precondition": cfg.precondition}
        # What the rule itself saw (valid split and the retrain-free proxy, never test or Retrain): a default
        # chosen from a study must be chosen on these columns, the test ones are read after the fact.
        picked = report["grid"][report["chosen"]]
        row["valid_ndcg@20_vs_rebuild"] = picked["V"] / report["v_rebuild"]
        row["proxy_gap"] = picked["D"]
        row["stopped"], row["steps"] = res.log.get("stopped"), res.log.get("steps")
        row["mia_member_rate"] = member_rate(res.model)
        rows[value] = row
    for row in rows.values():
        row["forget_recall@20_retrain"] = ref.forget.get("recall@20")
        row["mia_member_rate_retrain"] = mia_retrain
        row.pop("speedup", None)  # seconds here are not a speed figure (see the table's note)
    return {"dataset": dataset, "backbone": backbone, "regime": regime, "seed": seed, "method": method,
            "setting": setting, "rows": rows}


def markdown(groups: list[dict[str, Any]], results: Path, setting: str, values: list[str]) -> str:
    lines = [f"# `{setting}` study on `{results}`", "",
             f"TRU selected by the grid's rule under each value of `{setting}`; judged against the grid's Retrain. "
             "fR@20: Recall@20 of the deleted pairs (Retrain's in brackets). Seconds were measured while "
             "other jobs may have shared the CPU and are not a speed figure.", "",
             "valid N@20/rebuild and proxy |gap|: what the selection rule saw (valid split, retrain-free proxy) — "
             "the columns a default may be chosen on; the others are test figures, read after the fact.", "",
             f"| regime | seed | {setting} | gap | KS | fR@20 (Retrain) | MIA (Retrain) | N@20/RT | "
             "valid N@20/rebuild | proxy |gap| | chosen lr, β | steps |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for g in groups:
        for key in ("retrain-noise", *values):
            r = g["rows"][key]
            label = "Retrain, 2nd seed" if key == "retrain-noise" else key
            chosen = r.get("chosen")
            chosen_text = "" if chosen is None else "{:g}, {:g}".format(chosen["lr"], chosen["precondition"])
            lines.append(f"| {g['regime']} | {g['seed']} | {label} | {r['gap']:+.3f} | {r['ks']:.3f} | "
                         f"{r['forget_recall@20']:.4f} ({r['forget_recall@20_retrain']:.4f}) | "
                         f"{r['mia_member_rate']:.3f} ({r['mia_member_rate_retrain']:.3f}) | "
                         f"{r['ndcg@20_vs_retrain']:.3f} | "
                         f"{format_mean_std('{:.3f}', r.get('valid_ndcg@20_vs_rebuild'), None)} | "
                         f"{format_mean_std('{:.4f}', r.get('proxy_gap'), None)} | "
                         f"{chosen_text} | "
                         f"{r.get('steps', '')} |")
    lines += ["", "Mean over seeds:", "",
              f"| regime | {setting} | n | mean abs gap | KS | fR@20 − Retrain's | MIA − Retrain's | N@20/RT | "
              "valid N@20/rebuild |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for regime in sorted({g["regime"] for g in groups}):
        for key in ("retrain-noise", *values):
            rs = [g["rows"][key] for g in groups if g["regime"] == regime]
            lines.append(f"| {regime} | {'Retrain, 2nd seed' if key == 'retrain-noise' else key} | {len(rs)} | "
                         f"{np.mean([abs(r['gap']) for r in rs]):.3f} | {np.mean([r['ks'] for r in rs]):.3f} | "
                         f"{np.mean([r['forget_recall@20'] - r['forget_recall@20_retrain'] for r in rs]):+.4f} | "
                         f"{np.mean([r['mia_member_rate'] - r['mia_member_rate_retrain'] for r in rs]):+.3f} | "
                         f"{np.mean([r['ndcg@20_vs_retrain'] for r in rs]):.3f} | "
                         f"{format_mean_std('{:.3f}', mean_std(rs, 'valid_ndcg@20_vs_rebuild')[0], None)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, required=True, help="a finished grid's results folder (with models/)")
    ap.add_argument("--out", type=Path, required=True, help="folder for <setting>.json / <setting>.md")
    ap.add_argument("--method", default="tru")
    ap.add_argument("--setting", default="gate_scale", help="the TRU setting to vary")
    ap.add_argument("--values", default="percentile,logit", help="its values, comma-separated (JSON or text)")
    ap.add_argument("--regimes", default="item,interaction", help="regimes of the grid to study")
    ap.add_argument("--seeds", default="", help="seeds of the grid to study (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = config_from_record(read_grid(args.results))
    values = [v for v in args.values.split(",") if v]
    regimes = [r for r in cfg.regimes if r != "user" and r in args.regimes.split(",")]
    seeds = [s for s in cfg.seeds if not args.seeds or str(s) in args.seeds.split(",")]
    groups = []
    for dataset in cfg.datasets:
        for backbone in cfg.backbones:
            for regime in regimes:
                for seed in seeds:
                    try:
                        g = study_group(args.results, dataset, backbone, regime, seed, args.method,
                                        cfg.mia_max_pairs, args.setting, values)
                    except InputError as exc:
                        print(f"skipped: {exc}")
                        continue
                    groups.append(g)
                    for key in values:
                        r = g["rows"][key]
                        print(f"{dataset}/{backbone}/{regime}/s{seed} {key:10s} gap {r['gap']:+.3f} KS {r['ks']:.3f} "
                              f"fR@20 {r['forget_recall@20']:.4f} (Retrain {r['forget_recall@20_retrain']:.4f}) "
                              f"N@20/RT {r['ndcg@20_vs_retrain']:.3f}", flush=True)
    if not groups:
        raise SystemExit(f"error: no cached item/interaction group in {args.results}")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.setting.replace("_", "-")
    atomic_write_json(args.out / f"{stem}.json", {
        "results": str(args.results), "setting": args.setting, "values": values, "groups": groups,
        "date": now(), "machine": machine()})
    atomic_write_text(args.out / f"{stem}.md", markdown(groups, args.results, args.setting, values))
    print(f"wrote {args.out / (stem + '.md')}")


if __name__ == "__main__":
    main()
