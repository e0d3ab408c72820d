"""Where TRU's utility cost comes from (issue #11 part 2): which users lose, and which parameters cost it.

On the cached groups of a finished grid (the very original, request and Retrain the grid used; nothing
is trained, nothing is written into the results folder) TRU is re-run with the configuration its grid
cell chose, beside the zero-step ``rebuild`` model every approximate method starts from. Then, on the
**valid** split (never test: a fix designed from this study must not have seen test):

1. *which users lose*: per-user valid NDCG@20 of TRU − rebuild (and Retrain − rebuild, what honest
   forgetting costs), by the user's number of deleted pairs (0 / 1 / ≥ 2) and by retained-degree tercile;
2. *which parameters cost it*: TRU with one parameter group restored to the rebuild model's values —
   the user rows, the item rows (ID and trainable feature tables), everything shared (projections,
   gates) — and the valid NDCG@20 each restoration gives back;
3. *how far things moved*: Spearman correlation of a user's NDCG change with the movement of the
   user's own final embedding and with the mean movement of the final embeddings of the user's
   retained training items.

    .venv/bin/python scripts/collateral_study.py --results results/grid-baby-mgcn-influence \\
        --backbone mgcn --regime interaction --seeds 0 1 2 --out docs/results/collateral-baby-mgcn
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmunlearn.bench.grid import Cell, load_group
from mmunlearn.errors import InputError
from mmunlearn.evaluate.forgetting import utility_users
from mmunlearn.evaluate.ranking import split_mask, user_ndcg
from mmunlearn.io import atomic_write_json, atomic_write_text
from mmunlearn.unlearn.tru.method import TRUConfig
from mmunlearn.workflow.request import run_method

LOSS_SHARE = "share of TRU's loss"


def chosen_config(results: Path, dataset: str, backbone: str, regime: str, seed: int) -> dict[str, Any]:
    """The TRU settings the grid's selection chose for this group (its cell's log)."""
    path = Cell(dataset, backbone, regime, seed, "tru").path(results)
    if not path.is_file():
        raise InputError(f"{path}: no TRU cell for this group (run the grid first)")
    logged = json.loads(path.read_text())["log"]["config"]
    known = {f.name for f in fields(TRUConfig)}
    return {k: v for k, v in logged.items() if k in known}


def valid_ndcg(model: torch.nn.Module, applied: Any, users: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        u, i = model.final_embeddings()
    data = applied.retain
    return user_ndcg(u, i, data.split("valid"), split_mask(data.train), 20, users)


@contextmanager
def restored(model: torch.nn.Module, source: torch.nn.Module, names: list[str]) -> Iterator[torch.nn.Module]:
    """``model`` with its parameters ``names`` holding ``source``'s values, put back on exit (models hold
    sparse CSR graphs, which ``copy.deepcopy`` cannot copy)."""
    src = dict(source.named_parameters())
    params = {n: p for n, p in model.named_parameters() if n in names}
    saved = {n: p.detach().clone() for n, p in params.items()}
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(src[n])
    try:
        yield model
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(saved[n])


def parameter_split(model: Any, tru: torch.nn.Module, base: torch.nn.Module) -> dict[str, list[str]]:
    """TRU's changed parameters in three groups: user rows, item rows, shared."""
    tables = model.embedding_tables()
    base_p = dict(base.named_parameters())
    changed = [n for n, p in tru.named_parameters() if not torch.equal(p, base_p[n])]
    out: dict[str, list[str]] = {"user rows": [], "item rows": [], "shared": []}
    for name in changed:
        side = tables.get(name)
        out["user rows" if side == "user" else "item rows" if side == "item" else "shared"].append(name)
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def study_group(results: Path, dataset: str, backbone: str, regime: str, seed: int) -> dict[str, Any]:
    group = load_group(results, dataset, backbone, regime, seed)
    ctx, applied = group.ctx, group.ctx.applied
    fixed = chosen_config(results, dataset, backbone, regime, seed)
    t0 = time.perf_counter()
    tru = run_method("tru", ctx, fixed=fixed).result
    base = run_method("rebuild", ctx).result.model
    seconds = time.perf_counter() - t0
    users = utility_users(applied)
    evaluated, v_base = valid_ndcg(base, applied, users)
    models = {"original": ctx.original, "tru": tru.model, "retrain": group.retrain, "retrain-noise": group.noise}
    per_user = {name: valid_ndcg(m, applied, users)[1] for name, m in models.items()}
    per_user["rebuild"] = v_base

    deleted = np.diff(applied.forget.indptr)[evaluated]
    degree = np.diff(applied.retain.train.indptr)[evaluated]
    terciles = np.quantile(degree, [1 / 3, 2 / 3])
    groups = {"no deleted pair": deleted == 0, "1 deleted pair": deleted == 1, "≥ 2 deleted pairs": deleted >= 2,
              f"degree ≤ {terciles[0]:g}": degree <= terciles[0],
              f"degree in ({terciles[0]:g}, {terciles[1]:g}]": (degree > terciles[0]) & (degree <= terciles[1]),
              f"degree > {terciles[1]:g}": degree > terciles[1]}
    total = float(len(evaluated))
    tru_loss = float((per_user["tru"] - v_base).sum())
    by_users = []
    for label, sel in groups.items():
        if not sel.any():
            continue
        row = {"users": label, "n": int(sel.sum()), "share": float(sel.sum() / total),
               "rebuild": float(v_base[sel].mean())}
        for name in ("tru", "retrain", "retrain-noise", "original"):
            row[f"{name} − rebuild"] = float((per_user[name][sel] - v_base[sel]).mean())
        # this group's share of TRU's total loss (mean over all users = Σ groups of share × group mean)
        row[LOSS_SHARE] = float((per_user["tru"][sel] - v_base[sel]).sum() / tru_loss) if tru_loss else float("nan")
        by_users.append(row)

    split = parameter_split(ctx.original, tru.model, base)
    tru_mean = float(per_user["tru"].mean())
    by_params = []
    for label, names in split.items():
        if not names:
            by_params.append({"restored": label, "parameters": [], "valid_ndcg": tru_mean, "recovered": 0.0})
            continue
        with restored(tru.model, base, names) as hybrid:
            value = float(valid_ndcg(hybrid, applied, users)[1].mean())
        by_params.append({"restored": label, "parameters": names, "valid_ndcg": value, "recovered": value - tru_mean})

    with torch.no_grad():
        bu, bi = base.final_embeddings()
        tu, ti = tru.model.final_embeddings()
    user_move = (tu - bu).norm(dim=1).cpu().numpy()
    item_move = (ti - bi).norm(dim=1).cpu().numpy()
    train = applied.retain.train.tocsr()
    counts = np.maximum(np.diff(train.indptr), 1)
    items_move = np.asarray(train @ item_move).ravel() / counts  # mean movement of each user's items
    loss = per_user["tru"] - v_base
    item_deleted = np.asarray(applied.forget.sum(0)).ravel()
    moved = item_move > 0
    movement = {
        "rho(user NDCG change, own row movement)": spearman(loss, user_move[evaluated]),
        "rho(user NDCG change, mean movement of the user's items)": spearman(loss, items_move[evaluated]),
        "rho(item movement, item's deleted pairs), moved items": spearman(item_move[moved], item_deleted[moved]),
        "items moved": int(moved.sum()), "users moved": int((user_move > 0).sum()),
        "mean user-row movement / mean user norm": float(user_move.mean() / bu.norm(dim=1).mean().item()),
        "mean item movement / mean item norm": float(item_move.mean() / bi.norm(dim=1).mean().item()),
    }
    means = {name: float(v.mean()) for name, v in per_user.items()}
    return {"dataset": dataset, "backbone": backbone, "regime": regime, "seed": seed, "config": fixed,
            "seconds": seconds, "valid_ndcg@20": means, "tru_steps": tru.log.get("steps"),
            "repair": {k: tru.log.get(k) for k in ("repaired", "repair", "repair_trigger") if k in tru.log},
            "users": by_users, "parameters": by_params, "movement": movement,
            "forget_pairs": int(applied.forget.nnz), "evaluated_users": int(total)}


def markdown(groups: list[dict[str, Any]], results: Path) -> str:
    lines = [f"# Collateral-damage study on `{results}`", "",
             "Valid NDCG@20 (never test), users outside the request; TRU re-run with its grid cell's chosen "
             "config; differences to the zero-step `rebuild` model. Columns `x − rebuild` are means over the "
             "users of the row; `share of TRU's loss` is the row's part of TRU's summed loss.", ""]
    for g in groups:
        m = g["valid_ndcg@20"]
        lines += [f"## {g['dataset']} · {g['backbone']} · {g['regime']} · seed {g['seed']}", "",
                  f"{g['forget_pairs']} deleted pairs, {g['evaluated_users']} evaluated users. Valid NDCG@20: "
                  + ", ".join(f"{k} {v:.4f}" for k, v in m.items())
                  + f" (TRU/rebuild {m['tru'] / m['rebuild']:.3f}, Retrain/rebuild {m['retrain'] / m['rebuild']:.3f}).",
                  "", "| users | n | share | rebuild | TRU − rebuild | Retrain − rebuild | 2nd-seed Retrain − rebuild "
                  "| share of TRU's loss |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in g["users"]:
            lines.append(f"| {r['users']} | {r['n']} | {r['share']:.2f} | {r['rebuild']:.4f} | {r['tru − rebuild']:+.4f} | "
                         f"{r['retrain − rebuild']:+.4f} | {r['retrain-noise − rebuild']:+.4f} | "
                         f"{r[LOSS_SHARE]:.2f} |")
        lines += ["", "| TRU with this group restored to rebuild's values | parameters | valid NDCG@20 | recovered |",
                  "|---|---|---:|---:|"]
        for r in g["parameters"]:
            names = ", ".join(r["parameters"][:6]) + (" …" if len(r["parameters"]) > 6 else "")
            lines.append(f"| {r['restored']} | {names or '(unchanged)'} | {r['valid_ndcg']:.4f} | {r['recovered']:+.4f} |")
        lines += ["", "| movement | value |", "|---|---:|"]
        lines += [f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in g["movement"].items()]
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--dataset", default="baby")
    ap.add_argument("--backbone", default="mgcn")
    ap.add_argument("--regime", default="interaction")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    groups = [study_group(args.results, args.dataset, args.backbone, args.regime, s) for s in args.seeds]
    record = {"results": str(args.results), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "threads": args.threads, "groups": groups}
    atomic_write_json(args.out / "collateral.json", record)
    atomic_write_text(args.out / "collateral.md", markdown(groups, args.results))
    print(f"wrote {args.out / 'collateral.md'}")


if __name__ == "__main__":
    main()
