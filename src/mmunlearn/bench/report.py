"""The report of a results folder: ``results.csv``, ``results.md`` and PNG plots, from cell JSON alone.

``results.md`` holds one table per (dataset, backbone, regime): one row per method with mean ± std over
seeds, the best value of each column in **bold** among the methods — closest to Retrain for the
forgetting and membership columns (rank percentile, signed gap, KS, forget Recall@20, member rates),
highest for utility, similarity and speed-up, lowest for seconds — and Retrain, its second seed (the
noise floor) and the untouched original as reference rows. A paired Wilcoxon signed-rank test of
|gap| TRU vs each baseline of :data:`PAIRED_BASELINES` in the grid (MMRecUn, IFRU, SCIF) over
(regime, seed) pairs is added where there are at least :data:`MIN_WILCOXON_PAIRS` pairs
(:func:`pooled_test` pools several results folders). Every table and plot states dataset, backbone, regime, ratio, each
modality's provenance, date and machine. No model is loaded: the plots read the stored histograms.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmunlearn.bench.grid.results import now, read_cells, read_grid
from mmunlearn.bench.grid.schema import REF_PREFIX, dataset_key
from mmunlearn.io import atomic_write_text

MIN_WILCOXON_PAIRS = 5
#: the approximate methods TRU is tested against, in this order, wherever both are in a grid
PAIRED_BASELINES = ("mmrecun", "ifru", "scif")
REF_LABELS = {"ref-retrain": "*Retrain*", "ref-retrain-noise": "*Retrain, 2nd seed (noise floor)*",
              "ref-original": "*Original (no unlearning)*"}
REF_ORDER = ("ref-retrain", "ref-retrain-noise", "ref-original")


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: str
    best: str | None  # "max", "min", "zero" (closest to 0), "retrain" (closest to Retrain's), None
    retrain_key: str | None = None  # where Retrain's value sits in a method row (for best="retrain")
    regimes: tuple[str, ...] = ()  # only shown in these regimes (empty = all)


COLUMNS: tuple[Column, ...] = (
    Column("recall@20", "R@20", "{:.4f}", "max"),
    Column("ndcg@20", "N@20", "{:.4f}", "max"),
    Column("ndcg@20_vs_retrain", "N@20/RT", "{:.3f}", "max"),
    Column("forget_pct_mean", "pct", "{:.3f}", "retrain", "retrain_pct_mean"),
    Column("gap", "gap", "{:+.3f}", "zero"),
    Column("ks", "KS", "{:.3f}", "min"),
    Column("within_noise", "≤noise", "{:.2f}", "max"),
    Column("forget_recall@20", "fR@20", "{:.4f}", "retrain", "forget_recall@20_retrain"),
    Column("mia_member_rate", "MIA", "{:.3f}", "retrain", "mia_member_rate_retrain"),
    Column("mia_auc", "MIA AUC", "{:.3f}", "retrain", "mia_auc_retrain"),
    Column("user_member_rate", "uMIA", "{:.3f}", "retrain", "user_member_rate_retrain", ("user",)),
    Column("cka_user", "CKA-U", "{:.3f}", "max"),
    Column("cka_item", "CKA-I", "{:.3f}", "max"),
    Column("jaccard", "J@20", "{:.3f}", "max"),
    Column("seconds", "s", "{:.3g}", "min"),
    Column("speedup", "×RT", "{:.0f}", "max"),
)

LEGEND = (
    "R@20/N@20: test utility outside the request (retained training and valid items masked); N@20/RT: "
    "NDCG@20 ÷ Retrain's; pct: mean rank percentile of the deleted pairs (0 = top); gap: pct − Retrain's "
    "(negative = under-forgetting, positive = over-forgetting); KS: distance of the deleted pairs' "
    "percentile distribution to Retrain's; ≤noise: share of seeds where |gap| ≤ the second-seed "
    "Retrain's |gap| (a tie with Retrain); fR@20: Recall@20 of the deleted pairs (unmasked; the target is "
    "Retrain's, not 0); MIA: share of deleted pairs the interaction-level attack (fitted on the original, "
    "deleted pairs excluded from its members) calls member, MIA AUC: deleted pairs vs unseen real pairs — "
    "both judged against Retrain's row; uMIA: user-level attack (Zhang et al.) member rate of the deleted "
    "users; CKA-U/CKA-I: linear CKA of final user/item embeddings to Retrain's (users/items outside the "
    "request), J@20: top-20 Jaccard with Retrain's lists (users outside the request) — only meaningful "
    "beside the second-seed Retrain's row; s: wall seconds of the unlearning call alone; ×RT: Retrain's "
    "seconds ÷ the method's. **Bold**: best method per column (closest to Retrain for pct/gap/KS/fR@20/"
    "MIA/uMIA, highest for utility/≤noise/CKA/J@20/×RT, lowest for s). Cells: mean ± std over seeds."
)


# ----- loading -----------------------------------------------------------------------------------------
def flat_row(cell: dict[str, Any]) -> dict[str, Any]:
    """The CSV row of one cell: its key, its result row and context columns."""
    key = cell["cell"]
    ctx = cell.get("context", {})
    ds = ctx.get("dataset", {})
    row = {"dataset": key["dataset"], "backbone": key["backbone"], "regime": key["regime"], "seed": key["seed"],
           "method": key["method"], "reference": cell.get("reference") or "",
           "label": cell["row"].get("method")}
    for k, v in cell["row"].items():
        if k != "method" and not isinstance(v, dict | list):
            row[k] = v
    row["forget_recall@20_retrain"] = None  # filled in by attach_retrain_values
    row.update({"ratio": ctx.get("ratio"), "selection_rule": cell.get("selection", {}).get("rule"),
                "n_users": ds.get("n_users"), "n_items": ds.get("n_items"),
                "forget_pairs": cell.get("request", {}).get("forget_pairs"),
                "content": provenance_text(ds), "date": ctx.get("date"), "machine": ctx.get("machine"),
                "request_hash": cell.get("request", {}).get("hash", "")[:16]})
    return row


def attach_retrain_values(rows: list[dict[str, Any]]) -> None:
    """Give each row Retrain's forget Recall@20 of the same (dataset, backbone, regime, seed)."""
    rt = {(r["dataset"], r["backbone"], r["regime"], r["seed"]): r.get("forget_recall@20")
          for r in rows if r["method"] == "ref-retrain"}
    for r in rows:
        r["forget_recall@20_retrain"] = rt.get((r["dataset"], r["backbone"], r["regime"], r["seed"]))


def provenance_text(ds: dict[str, Any]) -> str:
    mods = ds.get("modalities") or {}
    if not mods:
        return "none (graph only)"
    return ", ".join(f"{n}={m.get('provenance')}" + (" (SYNTHETIC)" if m.get("synthetic") else "")
                     for n, m in sorted(mods.items()))


# ----- aggregation -------------------------------------------------------------------------------------
def _values(rows: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    vals = []
    for r in rows:
        v = r.get(key)
        if isinstance(v, bool):
            v = float(v)
        if isinstance(v, int | float) and math.isfinite(v):
            vals.append(float(v))
    return np.asarray(vals, dtype=np.float64)


def mean_std(rows: Sequence[dict[str, Any]], key: str) -> tuple[float | None, float | None, int]:
    v = _values(rows, key)
    if len(v) == 0:
        return None, None, 0
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else None), len(v)


def format_mean_std(fmt: str, mean: float | None, std: float | None) -> str:
    if mean is None:
        return "–"
    text = fmt.format(mean)
    if std is not None:
        text += " ± " + fmt.replace("+", "").format(std)
    return text


def best_rows(table: dict[str, list[dict[str, Any]]], col: Column) -> set[str]:
    """Methods holding the best value of ``col`` (ties on the displayed value all count)."""
    if col.best is None:
        return set()
    scored: dict[str, float] = {}
    for method, rows in table.items():
        if method.startswith(REF_PREFIX):
            continue
        m, _, n = mean_std(rows, col.key)
        if m is None:
            continue
        if col.best == "max":
            scored[method] = -m
        elif col.best == "min":
            scored[method] = m
        elif col.best == "zero":
            scored[method] = abs(m)
        elif col.best == "retrain":
            target, _, _ = mean_std(rows, col.retrain_key or "")
            if target is None:
                continue
            scored[method] = abs(m - target)
    if not scored:
        return set()
    best = min(scored.values())
    shown = {k: col.fmt.format(v) for k, v in scored.items()}
    return {k for k, v in scored.items() if v == best or shown[k] == col.fmt.format(best)}


def markdown_group_table(table: dict[str, list[dict[str, Any]]], regime: str, methods_order: Sequence[str]) -> str:
    cols = [c for c in COLUMNS if (not c.regimes or regime in c.regimes)
            and any(_values(rows, c.key).size for rows in table.values())]
    bold = {c.key: best_rows(table, c) for c in cols}
    lines = ["| method | n | " + " | ".join(c.header for c in cols) + " |",
             "|---|---:|" + "|".join("---:" for _ in cols) + "|"]
    order = [m for m in methods_order if m in table] + [m for m in REF_ORDER if m in table]
    for method in order:
        rows = table[method]
        cells = []
        for c in cols:
            mean, std, _ = mean_std(rows, c.key)
            if c.key in ("speedup", "seconds") and method == "ref-original":
                mean = None  # the original costs nothing: no seconds, no speed-up
            text = format_mean_std(c.fmt, mean, std)
            if method in bold[c.key] and text != "–":
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {REF_LABELS.get(method, method)} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----- statistics --------------------------------------------------------------------------------------
def wilcoxon_abs_gap(rows: Sequence[dict[str, Any]], a: str = "tru", b: str = "mmrecun",
                     min_pairs: int = MIN_WILCOXON_PAIRS) -> dict[str, Any]:
    """Paired Wilcoxon signed-rank test of |gap| of ``a`` vs ``b`` over (dataset, backbone, regime, seed).

    Returns ``{"n", "status", ...}``; ``status`` is ``"ok"`` (with ``statistic``, ``p_value``,
    ``median_diff`` = median(|gap_a| − |gap_b|), ``a_better`` = pairs where a's |gap| is smaller), or
    ``"n too small"`` below ``min_pairs`` pairs, or ``"not run"`` when either method is absent.
    """
    by_key: dict[str, dict[tuple, float]] = {a: {}, b: {}}
    for r in rows:
        if r["method"] in by_key and isinstance(r.get("gap"), int | float):
            by_key[r["method"]][(r["dataset"], r["backbone"], r["regime"], r["seed"])] = abs(float(r["gap"]))
    if not by_key[a] or not by_key[b]:
        return {"n": 0, "status": "not run", "a": a, "b": b}
    keys = sorted(set(by_key[a]) & set(by_key[b]), key=str)
    return paired_wilcoxon([by_key[a][k] for k in keys], [by_key[b][k] for k in keys], a, b, min_pairs)


def paired_wilcoxon(x: Sequence[float], y: Sequence[float], a: str, b: str,
                    min_pairs: int = MIN_WILCOXON_PAIRS) -> dict[str, Any]:
    """Wilcoxon signed-rank test of the pairs (``x[k]`` of ``a``, ``y[k]`` of ``b``): what
    :func:`wilcoxon_abs_gap` returns, for pairs a caller matched itself (e.g. an ablation beside the TRU of
    its own folder, where two folders may hold one (dataset, backbone, regime, seed))."""
    n = len(x)
    out: dict[str, Any] = {"n": n, "a": a, "b": b}
    if n < min_pairs:
        return {**out, "status": "n too small"}
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    d = xa - ya
    out.update({"median_diff": float(np.median(d)), "a_better": int((d < 0).sum()), "b_better": int((d > 0).sum())})
    if np.all(d == 0):
        return {**out, "status": "ok", "statistic": 0.0, "p_value": 1.0}
    from scipy.stats import wilcoxon

    res = wilcoxon(xa, ya)
    return {**out, "status": "ok", "statistic": float(res.statistic), "p_value": float(res.pvalue)}


def wilcoxon_text(res: dict[str, Any], scope: str) -> str:
    a, b = res.get("a", "tru"), res.get("b", "mmrecun")
    if res["status"] == "not run":
        return f"- {scope}: not run (needs both {a} and {b} in the grid)"
    if res["status"] == "n too small":
        return (f"- {scope}: n too small (n = {res['n']} paired (regime, seed) cells; the test needs "
                f"≥ {MIN_WILCOXON_PAIRS})")
    return (f"- {scope}: n = {res['n']}, W = {res['statistic']:.1f}, p = {res['p_value']:.3g}; median "
            f"(|gap {a}| − |gap {b}|) = {res['median_diff']:+.4f}; {a} closer in {res['a_better']}, "
            f"{b} closer in {res['b_better']} pairs")


def paired_tests(rows: Sequence[dict[str, Any]], cfg: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """TRU vs every baseline of :data:`PAIRED_BASELINES` the grid ran (MMRecUn always, so a grid without
    it says "not run"), per (dataset, backbone) and, for a grid with several, over all of them."""
    methods = set(cfg.get("methods", ()))
    baselines = [b for b in PAIRED_BASELINES if b == "mmrecun" or b in methods]
    tests: dict[str, dict[str, dict[str, Any]]] = {}
    for b in baselines:
        by_scope = tests.setdefault(b, {})
        for dataset in cfg["datasets"]:
            for backbone in cfg["backbones"]:
                sub = [r for r in rows if r["dataset"] == dataset and r["backbone"] == backbone]
                by_scope[f"{dataset}/{backbone}"] = wilcoxon_abs_gap(sub, "tru", b)
        if len(cfg["datasets"]) * len(cfg["backbones"]) > 1:
            by_scope["all"] = wilcoxon_abs_gap(rows, "tru", b)
    return tests


def pooled_test(folders: Sequence[Path], a: str = "tru", b: str = "mmrecun") -> dict[str, Any]:
    """The paired test over the cells of several results folders (e.g. one grid per backbone).

    A (dataset, backbone, regime, seed) pair found in two folders is refused: the same cell computed
    twice (by different code or settings) must not be counted twice or silently replaced.
    """
    from mmunlearn.errors import InputError

    rows: list[dict[str, Any]] = []
    seen: dict[tuple, Path] = {}
    for folder in folders:
        for row in (flat_row(c) for c in read_cells(folder)):
            if row["method"] not in (a, b):
                continue
            key = (row["method"], row["dataset"], row["backbone"], row["regime"], row["seed"])
            if key in seen:
                raise InputError(f"{folder}: cell {'/'.join(map(str, key))} is also in {seen[key]}; "
                                 "pool folders that hold different cells")
            seen[key] = Path(folder)
            rows.append(row)
    return wilcoxon_abs_gap(rows, a, b)


# ----- the report --------------------------------------------------------------------------------------
@dataclass
class Report:
    csv: Path
    markdown: Path
    plots: list[Path]
    wilcoxon: dict[str, dict[str, dict[str, Any]]]  # baseline → scope ("dataset/backbone", "all") → test


def group_rows(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]]:
    groups: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        groups[(r["dataset"], r["backbone"], r["regime"])][r["method"]].append(r)
    return groups


def header_lines(cells: Sequence[dict[str, Any]], dataset: str, backbone: str, regime: str) -> list[str]:
    """What a table/plot must state: dataset, backbone, regime, ratio, provenance, date, machine."""
    ctx = [c.get("context", {}) for c in cells]
    ds = next((c.get("dataset") for c in ctx if c.get("dataset")), {}) or {}
    dates = sorted(c["date"] for c in ctx if c.get("date"))
    machines = sorted({c["machine"].split(", load avg")[0] for c in ctx if c.get("machine")})
    ratio = next((c.get("ratio") for c in ctx if c.get("ratio") is not None), None)
    selection = next((c.get("selection") for c in ctx if c.get("selection")), "random")
    seeds = sorted({c["cell"]["seed"] for c in cells})
    train = next((c.get("train_config") for c in ctx if c.get("train_config")), {}) or {}
    orig = [c.get("original", {}) for c in ctx]
    lines = [
        f"- dataset: **{dataset}** ({ds.get('name', dataset)}: {ds.get('n_users')} users × {ds.get('n_items')} "
        f"items, {ds.get('train_pairs')} training pairs); backbone: **{backbone}**; regime: **{regime}**; "
        f"ratio: {ratio:.0%} ({'uniform pairs' if regime == 'interaction' else selection + ' selection'})"
        if ratio is not None else f"- dataset: {dataset}; backbone: {backbone}; regime: {regime}",
        f"- content: {provenance_text(ds)}",
        f"- seeds: {', '.join(map(str, seeds))}; training (originals and Retrain): epochs ≤ {train.get('epochs')}, "
        f"min_epochs {train.get('min_epochs')}, patience {train.get('patience')}, lr {train.get('lr')}, batch "
        f"{train.get('batch_size')}; originals: epochs run / best-valid epoch "
        + ", ".join(sorted({f"{o.get('epochs_run')}/{o.get('best_epoch')}" for o in orig if o})),
        f"- date: {dates[0] if dates else '?'}" + (f" … {dates[-1]}" if len(dates) > 1 else "")
        + f"; machine: {'; '.join(machines) or '?'}",
    ]
    if any(m.get("synthetic") for m in (ds.get("modalities") or {}).values()):
        lines.append("- **WARNING: content is SYNTHETIC (seeded random stand-ins, no real item information); "
                     "multimodal results here say nothing about real image/text features.**")
    for note in ds.get("notes", []):
        lines.append(f"- NOTE: {note}")
    rules = sorted({c.get("selection", {}).get("rule") for c in cells if not c.get("reference")} - {None})
    if rules:
        lines.append(f"- hyper-parameters: {'; '.join(rules)}")
    return lines


def write_report(out: Path, *, plots: bool = True) -> Report:
    """Write ``results.csv``, ``results.md`` and the plots of the results folder ``out``."""
    out = Path(out)
    record = read_grid(out)
    cells = read_cells(out)
    rows = [flat_row(c) for c in cells]
    attach_retrain_values(rows)
    csv_path = out / "results.csv"
    atomic_write_text(csv_path, to_csv(rows))
    groups = group_rows(rows)
    cells_by_group: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in cells:
        k = c["cell"]
        cells_by_group[(k["dataset"], k["backbone"], k["regime"])].append(c)
    cfg = record["config"]
    methods_order = list(cfg.get("methods", []))
    md = ["# Unlearning benchmark", "",
          f"Grid `{record['hash'][:12]}` in `{out}`: datasets {', '.join(cfg['datasets'])}; backbones "
          f"{', '.join(cfg['backbones'])}; regimes {', '.join(cfg['regimes'])}; methods "
          f"{', '.join(cfg['methods'])}; seeds {', '.join(map(str, cfg['seeds']))}; ratio {cfg['ratio']:.0%}. "
          f"{len(cells)} cell(s). Report written {now()}.", "", LEGEND, ""]
    plot_paths: list[Path] = []
    order = [(d, b, r) for d in cfg["datasets"] for b in cfg["backbones"] for r in cfg["regimes"]]
    order += [k for k in groups if k not in order]
    for key in order:
        if key not in groups:
            continue
        dataset, backbone, regime = key
        md += [f"## {dataset} · {backbone} · {regime} regime", ""]
        md += header_lines(cells_by_group[key], dataset, backbone, regime) + [""]
        md += [markdown_group_table(groups[key], regime, methods_order), ""]
        if plots:
            from mmunlearn.bench.plots import group_plots

            caption = plot_caption(cells_by_group[key], dataset, backbone, regime)
            paths = group_plots(groups[key], cells_by_group[key], out / "plots",
                                f"{dataset_key(dataset)}__{backbone}__{regime}", caption)
            plot_paths += paths
            md += [" ".join(f"![{p.stem}](plots/{p.name})" for p in paths), ""]
    tests = paired_tests(rows, cfg)
    for baseline, by_scope in tests.items():
        md += ["", f"## Paired Wilcoxon signed-rank test: |gap| of TRU vs {baseline}", "",
               f"Pairs are (regime, seed) cells with both methods; the test runs where n ≥ {MIN_WILCOXON_PAIRS}.", ""]
        md += [wilcoxon_text(res, scope.replace("/", " · ") if scope != "all" else "all datasets and backbones")
               for scope, res in by_scope.items()]
    md_path = out / "results.md"
    atomic_write_text(md_path, "\n".join(md) + "\n")
    return Report(csv=csv_path, markdown=md_path, plots=plot_paths, wilcoxon=tests)


def plot_caption(cells: Sequence[dict[str, Any]], dataset: str, backbone: str, regime: str) -> str:
    ctx = [c.get("context", {}) for c in cells]
    ds = next((c.get("dataset") for c in ctx if c.get("dataset")), {}) or {}
    ratio = next((c.get("ratio") for c in ctx if c.get("ratio") is not None), 0.0)
    dates = sorted(c["date"][:10] for c in ctx if c.get("date"))
    machines = sorted({c["machine"].split(", load avg")[0] for c in ctx if c.get("machine")})
    seeds = sorted({c["cell"]["seed"] for c in cells})
    synthetic = any(m.get("synthetic") for m in (ds.get("modalities") or {}).values())
    return (f"{dataset} ({ds.get('n_users')}×{ds.get('n_items')}) · {backbone} · {regime} regime · ratio "
            f"{ratio:.0%} · seeds {','.join(map(str, seeds))} · content: {provenance_text(ds)}"
            + (" — SYNTHETIC content" if synthetic else "")
            + f"\n{dates[0] if dates else '?'}" + (f"…{dates[-1]}" if dates and dates[-1] != dates[0] else "")
            + f" · {'; '.join(machines)}")


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    return buf.getvalue()


# ----- the demo's table --------------------------------------------------------------------------------
DEMO_COLUMNS = (
    ("recall@20", "retain R@20", "{:.4f}"), ("ndcg@20", "retain N@20", "{:.4f}"),
    ("gap", "pct gap to RT", "{:+.3f}"), ("forget_recall@20", "forget R@20", "{:.4f}"),
)


def demo_table(cells: Sequence[dict[str, Any]], methods: Sequence[str]) -> str:
    """The demo's Markdown table: utility, forgetting gap, forget Recall, MIA beside Retrain's, CKA beside
    the second-seed Retrain's, seconds and speed-up (means over the cells' seeds)."""
    rows = [flat_row(c) for c in cells]
    attach_retrain_values(rows)
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[r["method"]].append(r)
    head = ["method", *(h for _, h, _ in DEMO_COLUMNS), "MIA member rate (RT)", "CKA user/item (RT 2nd seed)",
            "seconds", "speed-up"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "|".join("---:" for _ in head[1:]) + "|"]
    order = [*REF_ORDER[:2], *[m for m in methods if m in by], "ref-original"]
    for method in order:
        if method not in by:
            continue
        rs = by[method]
        cells_txt = [format_mean_std(fmt, mean_std(rs, key)[0], None) for key, _, fmt in DEMO_COLUMNS]
        mia, rt_mia = mean_std(rs, "mia_member_rate")[0], mean_std(rs, "mia_member_rate_retrain")[0]
        cells_txt.append("–" if mia is None else f"{mia:.3f} ({rt_mia:.3f})")
        cu, ci = mean_std(rs, "cka_user")[0], mean_std(rs, "cka_item")[0]
        nu, ni = mean_std(rs, "cka_user_noise")[0], mean_std(rs, "cka_item_noise")[0]
        cells_txt.append("–" if cu is None else f"{cu:.3f}/{ci:.3f} ({nu:.3f}/{ni:.3f})")
        secs = mean_std(rs, "seconds")[0]
        cells_txt.append("–" if method == "ref-original" or secs is None else f"{secs:.3g}")
        sp = mean_std(rs, "speedup")[0]
        cells_txt.append("–" if method in ("ref-original", "ref-retrain", "ref-retrain-noise") or sp is None
                         else f"{sp:.0f}×")
        lines.append(f"| {REF_LABELS.get(method, method).strip('*')} | " + " | ".join(cells_txt) + " |")
    return "\n".join(lines)


__all__ = ["write_report", "Report", "COLUMNS", "wilcoxon_abs_gap", "paired_wilcoxon", "markdown_group_table", "best_rows",
           "demo_table", "flat_row", "to_csv", "mean_std", "format_mean_std", "MIN_WILCOXON_PAIRS"]
