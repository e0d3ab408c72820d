"""Sharded exact unlearning (SISA, RecEraser) against monolithic Retrain, one dataset × backbone × regimes.

For each method a sharded model is trained once (``mmunlearn train --shards K``'s code path); for each
regime one seeded request (``mmunlearn forget sample``'s sampler) is unlearned by Retrain (a fresh
monolithic model on the retain data), a second-seed Retrain (the noise floor) and each sharded method.
Rows: deleted-pair rank percentile and its gap to Retrain, retain test NDCG@20 against Retrain, seconds
(wall) and shard-seconds. Plus one single-user request per method (what SISA is built for: one shard).

``--sharded-noise`` adds the exact methods' own noise floor: the same sharded model trained from scratch
on the retain data with the noise seed (partition and shard seeds included). Its gap/KS to the unlearned
sharded model (``gap_to_method``, ``ks_to_method``) is what "exact" can be held to; its gap to the
monolithic Retrain says how much of a sharded method's gap is the model class, not remembered data.

Models are cached under ``--work`` (a rerun reuses them); results go to ``--out`` (JSON + Markdown),
rewritten after every row so an interrupted run keeps what it finished.

    .venv/bin/python scripts/shard_bench.py --dataset baby --backbone lightgcn --shards 4 --threads 1 \
        --out docs/results/shard-bench-baby-lightgcn-k4 --work runs/shard-bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from mmunlearn.checkpoint import load_checkpoint, save_checkpoint
from mmunlearn.data.requests import ForgetRequest, apply_request, sample_request
from mmunlearn.evaluate.forgetting import evaluate_forgetting, ks_distance, result_row
from mmunlearn.io import atomic_write_json, atomic_write_text
from mmunlearn.models.registry import MODELS, build_model, model_config
from mmunlearn.models.sharded import sharded_config
from mmunlearn.pipeline import prepare_for_model, train_and_save
from mmunlearn.train.launch import fit
from mmunlearn.train.trainer import TrainConfig, seed_everything
from mmunlearn.unlearn.base import UnlearnContext, build_method

PARTITION = {"sisa": "random", "receraser": "user"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="baby")
    ap.add_argument("--backbone", default="lightgcn")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--methods", nargs="+", default=["sisa", "receraser"])
    ap.add_argument("--receraser-partition", default="user", choices=["user", "item"])
    ap.add_argument("--regimes", nargs="+", default=["user", "item", "interaction"])
    ap.add_argument("--ratio", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise-seed", type=int, default=1000)
    ap.add_argument("--no-noise", action="store_true", help="skip the second-seed Retrain")
    ap.add_argument("--sharded-noise", action="store_true",
                    help="also train each sharded model from scratch on the retain data with the noise seed")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--min-epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--eval-every", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--nproc", type=int, default=1, help="processes for shard retraining")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    args = ap.parse_args()
    PARTITION["receraser"] = args.receraser_partition
    torch.set_num_threads(args.threads)

    bcfg = model_config(args.backbone)
    prepared = prepare_for_model(args.dataset, 0, args.backbone, bcfg)
    data = prepared.data
    lr = MODELS[args.backbone][0].recommended_lr or 1e-3
    tcfg = TrainConfig(epochs=args.epochs, min_epochs=args.min_epochs, patience=args.patience,
                       eval_every=args.eval_every, lr=lr, seed=args.seed, threads=args.threads)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"rows": [], "trained": {}}
    results.update({"command": "scripts/shard_bench.py " + " ".join(os.sys.argv[1:]),
                    "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                               f"{os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s)",
                    "train_config": asdict(tcfg), "backbone_config": asdict(bcfg), "dataset": data.name,
                    "shards": args.shards})
    done = {(r["regime"], r["method"]) for r in results["rows"]}

    def save() -> None:
        atomic_write_json(results_path, results)
        atomic_write_text(args.out / "results.md", table(results))

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", flush=True)

    # the sharded originals, trained once
    sharded = {}
    for m in args.methods:
        run = args.work / f"{args.dataset}-{args.backbone}-{m}-k{args.shards}-s{args.seed}"
        if not (run / "meta.json").is_file():
            log(f"training the {m} model ({args.shards} shards, {PARTITION[m]} partition)")
            scfg = sharded_config(args.backbone, bcfg, args.shards, PARTITION[m], "auto", args.seed)
            tr = train_and_save(prepared, "sharded", scfg, tcfg, run, show_progress=False, nproc=args.nproc)
            results["trained"][m] = {"seconds": tr.result.seconds, "test": tr.test, "history": tr.result.history,
                                     "load_avg": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M UTC")}
            save()
        sharded[m] = run

    for regime in args.regimes:
        req = sample_request(data, regime, args.ratio, args.seed)
        applied = apply_request(data, req)
        refs = {}
        for name, seed in (("retrain", args.seed), ("retrain-noise", args.noise_seed)):
            if name == "retrain-noise" and args.no_noise:
                continue
            path = args.work / f"{args.dataset}-{args.backbone}-{regime}-{name}-s{seed}"
            ck = _trained(path, args.backbone, bcfg, applied.retain, tcfg, seed, log, f"{regime}: {name} (seed {seed})")
            refs[name] = (ck.model, evaluate_forgetting(ck.model, applied), float(ck.meta["metrics"]["seconds"]),
                          ck.meta["metrics"])
        rt_model, rt_ev, rt_s, _ = refs["retrain"]
        nz_ev = refs["retrain-noise"][1] if "retrain-noise" in refs else None
        for name, (_, ev, secs, met) in refs.items():
            if (regime, name) not in done:
                row = result_row(name, ev, retrain=rt_ev, noise=nz_ev, seconds=secs, retrain_seconds=rt_s)
                row.update({"regime": regime, "epochs_run": met.get("epochs_run"), "load_avg": met.get("load_avg")})
                results["rows"].append(_clean(row))
        for m in args.methods:
            if (regime, m) in done:
                continue
            ck = load_checkpoint(sharded[m], data)
            if (regime, f"{m} (before unlearning)") not in done:
                ev0 = evaluate_forgetting(ck.model, applied)
                row = result_row(f"{m} (before unlearning)", ev0, retrain=rt_ev, noise=nz_ev, seconds=0.0,
                                 retrain_seconds=rt_s)
                row["regime"] = regime
                results["rows"].append(_clean(row))
            log(f"{regime}: {m}")
            ctx = UnlearnContext(original=ck.model, applied=applied, model_name="sharded", model_config=ck.model.config,
                                 train_config=tcfg, seed=args.seed)
            res = build_method(m, nproc=args.nproc).run(ctx)
            ev = evaluate_forgetting(res.model, applied)
            row = result_row(m, ev, retrain=rt_ev, noise=nz_ev, seconds=res.seconds, retrain_seconds=rt_s)
            row.update({"regime": regime, "load_avg": os.getloadavg()[0],
                        **{k: res.log.get(k) for k in ("retrained_shards", "untouched_shards", "shard_seconds",
                                                       "shard_seconds_total", "aggregator_seconds")}})
            results["rows"].append(_clean(row))
            save()
            if args.sharded_noise:
                _sharded_noise_row(args, m, regime, applied, bcfg, tcfg, ev, rt_ev, rt_s, results, log)
                save()
        save()

    # one user, the deletion SISA is built for: one shard (no Retrain; its cost is a full training)
    for m in args.methods:
        if ("single-user", m) in done:
            continue
        ck = load_checkpoint(sharded[m], data)
        user = int(np.random.default_rng(args.seed).choice(np.flatnonzero(np.diff(data.train.indptr) > 0)))
        applied = apply_request(data, ForgetRequest.explicit(users=[user]))
        log(f"single user {user}: {m}")
        ctx = UnlearnContext(original=ck.model, applied=applied, model_name="sharded", model_config=ck.model.config,
                             train_config=tcfg, seed=args.seed)
        res = build_method(m, nproc=args.nproc).run(ctx)
        results["rows"].append(_clean({"regime": "single-user", "method": m, "seconds": res.seconds,
                                       "load_avg": os.getloadavg()[0],
                                       **{k: res.log.get(k) for k in ("retrained_shards", "untouched_shards",
                                                                      "shard_seconds", "shard_seconds_total",
                                                                      "aggregator_seconds")}}))
        save()
    log("done")


def _sharded_noise_row(args: argparse.Namespace, m: str, regime: str, applied, bcfg, tcfg: TrainConfig,
                       method_ev, rt_ev, rt_s: float, results: dict, log) -> None:
    """The sharded model of ``m`` trained from scratch on the retain data with the noise seed."""
    name = f"{m}, 2nd seed from scratch"
    if any(r["regime"] == regime and r["method"] == name for r in results["rows"]):
        return
    path = args.work / f"{args.dataset}-{args.backbone}-{regime}-{m}-k{args.shards}-s{args.noise_seed}"
    scfg = sharded_config(args.backbone, bcfg, args.shards, PARTITION[m], "auto", args.noise_seed)
    ck = _trained(path, "sharded", scfg, applied.retain, tcfg, args.noise_seed, log,
                  f"{regime}: {name} (seed {args.noise_seed})")
    ev = evaluate_forgetting(ck.model, applied)
    row = result_row(name, ev, retrain=rt_ev, seconds=float(ck.meta["metrics"]["seconds"]), retrain_seconds=rt_s)
    row.update({"regime": regime, "gap_to_method": ev.mean_percentile - method_ev.mean_percentile,
                "ks_to_method": ks_distance(ev.percentiles, method_ev.percentiles),
                "load_avg": ck.meta["metrics"].get("load_avg")})
    results["rows"].append(_clean(row))


def _trained(path: Path, model_name: str, model_cfg, data, tcfg: TrainConfig, seed: int,
             log: Callable[[str], None], what: str):
    """The checkpoint at ``path``; trained there first (``tcfg`` with ``seed``) if missing, so a rerun reuses it."""
    if not (path / "meta.json").is_file():
        log(what)
        cfg = TrainConfig(**{**asdict(tcfg), "seed": seed})
        seed_everything(seed)
        model = build_model(model_name, data, model_cfg)
        t0 = time.perf_counter()
        res = fit(model, data, cfg, show_progress=False)
        save_checkpoint(path, model, data, model_config=model_cfg, train_config=cfg,
                        metrics={"seconds": time.perf_counter() - t0, "best_epoch": res.best_epoch,
                                 "epochs_run": res.epochs_run, "load_avg": os.getloadavg()[0]})
    return load_checkpoint(path, data)


def _clean(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not np.isfinite(v):
            v = None
        out[k] = v
    return out


def _to_method(row: dict) -> str:
    if row.get("gap_to_method") is None:
        return ""
    return f"{row['gap_to_method']:+.3f} / {row['ks_to_method']:.3f}"


def table(results: dict) -> str:
    lines = [f"# Sharded exact unlearning — {results.get('dataset')} × K={results.get('shards')}", "",
             f"`{results.get('command')}`", "", f"machine: {results.get('machine')}", "",
             "| regime | method | deleted-pair pct | gap to Retrain | noise gap | retain N@20 | N@20 / Retrain "
             "| seconds | shard-seconds | retrained shards | gap / KS to the method |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]

    def f(v, fmt="{:.3f}"):
        return "–" if v is None else fmt.format(v)

    for r in results["rows"]:
        lines.append(f"| {r['regime']} | {r['method']} | {f(r.get('forget_pct_mean'))} | {f(r.get('gap'), '{:+.3f}')} "
                     f"| {f(r.get('noise_gap'), '{:+.3f}')} | {f(r.get('ndcg@20'), '{:.4f}')} "
                     f"| {f(r.get('ndcg@20_vs_retrain'))} | {f(r.get('seconds'), '{:.1f}')} "
                     f"| {f(r.get('shard_seconds_total'), '{:.1f}')} | {r.get('retrained_shards', '')} "
                     f"| {_to_method(r)} |")
    for m, t in results.get("trained", {}).items():
        lines.append("")
        lines.append(f"{m}: trained in {t['seconds']:.1f} s (load {t['load_avg']:.1f}, {t['date']}); "
                     f"test R@20 {t['test']['recall@20']:.4f}, N@20 {t['test']['ndcg@20']:.4f}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
