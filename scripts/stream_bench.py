"""Continual-deletion benchmark (docs/BENCHMARKS.md §7): a stream of N sequential requests, the gap
to a Retrain on all deletions so far after chosen steps, per method, with and without reconciliation.

    .venv/bin/python scripts/stream_bench.py --checkpoint RUN --out results/stream-baby-lightgcn \\
        --n 10 --ratio 0.01 --methods tru,mmrecun,ifru --reconcile-every 5 --ref-steps 2,5,10 --threads 1

What it does (resumable: every stream, Retrain and evaluation is cached in ``--out``):

1. samples N interaction requests in arrival order (``sample_sequence``: request k on the data left
   after requests 0..k-1) into ``out/requests/``;
2. runs ``mmunlearn stream`` for every method, plain, with ``--reconcile-every`` (for the methods of
   ``--reconcile-methods``) and with ``--drift-budget`` (for ``--budget-methods``) — the library's
   :func:`~mmunlearn.stream.run_stream`: real child checkpoints, ledger lines, drift per step — each
   from its own copy of the base checkpoint (``out/bases/``);
3. trains the reference — Retrain from scratch on the retain data of all deletions up to step k (the
   base checkpoint's model and training config, the same seed) — at each ``--ref-steps`` step;
4. compares each stream's step-k model with that Retrain on *all* deleted pairs so far: the signed gap
   of their mean rank percentile (the grid's judge), KS distance, test NDCG@20 outside the requests
   relative to Retrain; plus the untouched base model as the do-nothing line;
5. writes ``results.json``, ``results.md`` and ``gap.png`` (gap to Retrain against step).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--ratio", type=float, default=0.01)
    parser.add_argument("--regime", default="interaction")
    parser.add_argument("--methods", default="tru,mmrecun,ifru")
    parser.add_argument("--reconcile-every", type=int, default=5, help="0 = no reconciled variant")
    parser.add_argument("--ref-steps", default="2,5,10", help="steps (1-based) with a reference Retrain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reconcile-methods", default=None,
                        help="methods that also run with --reconcile-every (default: every method)")
    parser.add_argument("--drift-budget", type=float, default=0.0,
                        help="also run a 'budget' stream that reconciles when |drift| passes this (0 = none)")
    parser.add_argument("--budget-methods", default=None,
                        help="methods that also run with --drift-budget (default: every method)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from mmunlearn.checkpoint import read_meta
    from mmunlearn.data.requests import apply_request, sample_sequence, save_request
    from mmunlearn.evaluate.forgetting import evaluate_forgetting, ks_distance
    from mmunlearn.stream import StreamConfig, merged_request, run_stream
    from mmunlearn.train.trainer import TrainConfig
    from mmunlearn.unlearn.base import UnlearnContext
    from mmunlearn.workflow.compare import retrain_cached
    from mmunlearn.workflow.runner import load_run

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    base = load_run(args.checkpoint)
    req_dir = out / "requests"
    if not req_dir.is_dir() or len(list(req_dir.glob("*.json"))) != args.n:
        for k, r in enumerate(sample_sequence(base.data, args.regime, args.n, args.ratio, seed=args.seed)):
            save_request(req_dir / f"{k:03d}.json", r)
    req_paths = sorted(req_dir.glob("*.json"))
    methods = [m for m in args.methods.split(",") if m]
    reconciled = set(methods if args.reconcile_methods is None else args.reconcile_methods.split(","))
    budgeted = set(methods if args.budget_methods is None else args.budget_methods.split(","))
    ref_steps = [int(s) for s in args.ref_steps.split(",") if s]

    streams: dict[str, dict] = {}
    for m in methods:
        variants = [("plain", StreamConfig(method=m, seed=args.seed))]
        if args.reconcile_every and m in reconciled:
            variants.append(("reconcile", StreamConfig(method=m, reconcile_every=args.reconcile_every, seed=args.seed)))
        if args.drift_budget and m in budgeted:
            variants.append(("budget", StreamConfig(method=m, drift_budget=args.drift_budget, seed=args.seed)))
        for vname, scfg in variants:
            key = f"{m}-{vname}"
            t0 = time.perf_counter()
            # each stream starts from its own copy of the base: the ledger (rightly) refuses the same
            # request twice on one checkpoint, and every stream applies the same first request
            start = out / "bases" / key
            if not (start / "meta.json").is_file():
                shutil.copytree(args.checkpoint, start, ignore=shutil.ignore_patterns("ledger.jsonl"),
                                dirs_exist_ok=True)
            state = run_stream(start, req_dir, out / "streams" / key, scfg,
                               echo=lambda s, key=key: print(f"[{key}] {s}", flush=True))
            streams[key] = state
            print(f"[{key}] done in {time.perf_counter() - t0:.0f} s (this call)", flush=True)

    meta = read_meta(args.checkpoint)
    tcfg = TrainConfig(**{k: v for k, v in meta["train_config"].items()})
    rows, refs = [], {}
    cache = out / "eval-cache.json"
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    for k in ref_steps:
        applied = apply_request(base.data, merged_request(req_paths[:k]))
        ctx = UnlearnContext(original=base.model, applied=applied, model_name=meta["model"],
                             model_config=base.model.config, train_config=tcfg, seed=args.seed)
        rt_model, rt_seconds, _ = retrain_cached(ctx, args.seed, out / "retrain")
        rt = evaluate_forgetting(rt_model, applied)
        refs[k] = {"retrain_seconds": rt_seconds, "retrain_pct_mean": rt.mean_percentile,
                   "retrain_ndcg@20": rt.utility["ndcg@20"], "forget_pairs": int(applied.forget.nnz)}
        orig = evaluate_forgetting(base.model, applied)
        rows.append({"stream": "original (no unlearning)", "method": "none", "variant": "-", "step": k,
                     "gap": orig.mean_percentile - rt.mean_percentile, "ks": ks_distance(orig.percentiles, rt.percentiles),
                     "ndcg@20_vs_retrain": orig.utility["ndcg@20"] / rt.utility["ndcg@20"], "seconds": 0.0,
                     "reconciliations": 0, "drift": None})
        for key, state in streams.items():
            tag = f"{key}@{k}"
            if tag not in done:
                step = state["steps"][k - 1]
                model = load_run(Path(step["child"])).model
                ev = evaluate_forgetting(model, applied)
                spent = sum(float(s.get("seconds") or 0) + float(s.get("reconcile_seconds") or 0)
                            for s in state["steps"][:k])
                done[tag] = {"gap": ev.mean_percentile - rt.mean_percentile,
                             "ks": ks_distance(ev.percentiles, rt.percentiles),
                             "ndcg@20_vs_retrain": ev.utility["ndcg@20"] / rt.utility["ndcg@20"],
                             "seconds": spent, "reconciliations": sum(bool(s["reconciled"]) for s in state["steps"][:k]),
                             "drift": step.get("approximate_drift", step.get("drift")),
                             "proxy_gap": step.get("proxy_gap")}
                cache.write_text(json.dumps(done, indent=2))
            m, vname = key.rsplit("-", 1)
            rows.append({"stream": key, "method": m, "variant": vname, "step": k, **done[tag]})
    machine = {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        machine["cpu"] = next(line.split(":", 1)[1].strip()
                              for line in Path("/proc/cpuinfo").read_text().splitlines()
                              if line.startswith("model name"))
        machine["load"] = Path("/proc/loadavg").read_text().split()[:3]
    except (OSError, StopIteration):
        pass
    result = {"settings": vars(args) | {"checkpoint": str(args.checkpoint), "out": str(out)}, "machine": machine,
              "references": refs, "rows": rows,
              "streams": {k: [{kk: s.get(kk) for kk in ("index", "method", "proxy_gap", "drift", "approximate_drift",
                                                         "seconds", "reconcile_seconds", "reconciled", "forget_pairs")}
                              for s in st["steps"]] for k, st in streams.items()}}
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    _markdown(out / "results.md", result)
    _plot(out / "gap.png", result)
    print(f"wrote {out / 'results.json'}, results.md, gap.png")


def _markdown(path: Path, result: dict) -> None:
    lines = ["| stream | step | deleted pairs | gap to Retrain | KS | N@20 / Retrain | drift (proxy) | seconds (cum.) | "
             "reconciliations |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    refs = result["references"]
    for r in sorted(result["rows"], key=lambda r: (r["stream"], r["step"])):
        drift = "–" if r.get("drift") is None else f"{r['drift']:+.3f}"
        lines.append(f"| {r['stream']} | {r['step']} | {refs[r['step']]['forget_pairs']} | {r['gap']:+.3f} | {r['ks']:.3f} | "
                     f"{r['ndcg@20_vs_retrain']:.3f} | {drift} | {r['seconds']:.1f} | {r['reconciliations']} |")
    lines.append("")
    lines.append("| step | Retrain seconds | Retrain deleted-pair pct |")
    lines.append("|---:|---:|---:|")
    for k, ref in sorted(refs.items()):
        lines.append(f"| {k} | {ref['retrain_seconds']:.1f} | {ref['retrain_pct_mean']:.3f} |")
    path.write_text("\n".join(lines) + "\n")


def _plot(path: Path, result: dict) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    by: dict[str, list] = {}
    for r in result["rows"]:
        by.setdefault(r["stream"], []).append((r["step"], r["gap"]))
    for name, pts in sorted(by.items()):
        pts.sort()
        style = "--" if name.endswith(("reconcile", "budget")) else ("-" if "original" not in name else ":")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", label=name)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.axhspan(-0.03, 0.03, color="grey", alpha=0.15, label="±0.03")
    ax.set_xlabel("request (step) of the stream")
    ax.set_ylabel("deleted pairs' mean rank pct − Retrain's")
    s, m = result["settings"], result["machine"]
    ax.set_title(f"{s['n']} sequential {s['ratio']:g} {s['regime']} requests; {m['date']}, {m['threads']} thread(s)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
