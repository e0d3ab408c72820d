"""PNG plots of one (dataset, backbone, regime) group, from the stored cell rows and histograms.

Three plots, each captioned with dataset, backbone, regime, ratio, content provenance, date and machine:

- ``*__tradeoff.png``: retain NDCG@20 against the signed rank-percentile gap to Retrain, one point per
  method (mean ± std over seeds), Retrain at 0, its second seed and the original marked, and a vertical
  band for the noise floor (± the second-seed Retrain's mean |gap|);
- ``*__seconds.png``: seconds of the unlearning call per method beside Retrain's, log scale;
- ``*__percentiles.png``: the distribution of the deleted pairs' rank percentiles per method beside
  Retrain's (and its second seed's), from the histograms the cells store.

matplotlib's object API with the Agg canvas is used directly: no pyplot state, no display needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmunlearn.bench.grid.schema import REF_PREFIX
from mmunlearn.io import atomic_write

RT, NOISE, ORIG = "ref-retrain", "ref-retrain-noise", "ref-original"


def _mean_std(rows: Sequence[dict[str, Any]], key: str) -> tuple[float, float]:
    vals = [float(r[key]) for r in rows if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
    if not vals:
        return float("nan"), 0.0
    return float(np.mean(vals)), (float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))
    return path


def _caption(fig: Figure, caption: str) -> None:
    fig.text(0.01, 0.01, caption, fontsize=7, va="bottom", ha="left", color="#333333", wrap=True)


def _methods(table: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [m for m in table if not m.startswith(REF_PREFIX)]


def tradeoff_plot(table: dict[str, list[dict[str, Any]]], path: Path, caption: str) -> Path:
    fig = Figure(figsize=(8.0, 5.6))
    ax = fig.add_axes((0.1, 0.2, 0.62, 0.72))
    noise_rows = table.get(NOISE, [])
    floor = float(np.mean([abs(r["gap"]) for r in noise_rows if isinstance(r.get("gap"), int | float)])) \
        if noise_rows else 0.0
    if floor > 0:
        ax.axvspan(-floor, floor, color="#bbbbbb", alpha=0.35, lw=0, label=f"noise floor ±{floor:.3f}")
    ax.axvline(0.0, color="black", lw=0.8, ls=":")
    cmap = [f"C{i % 10}" for i in range(len(_methods(table)))]
    for color, method in zip(cmap, _methods(table), strict=True):
        x, xe = _mean_std(table[method], "gap")
        y, ye = _mean_std(table[method], "ndcg@20")
        if math.isnan(x) or math.isnan(y):
            continue
        ax.errorbar([x], [y], xerr=[xe], yerr=[ye], fmt="o", color=color, ms=7, capsize=3, label=method)
    for key, marker, label in ((RT, "*", "Retrain"), (NOISE, "D", "Retrain, 2nd seed"),
                               (ORIG, "X", "Original (no unlearning)")):
        if key not in table:
            continue
        x, _ = _mean_std(table[key], "gap")
        y, ye = _mean_std(table[key], "ndcg@20")
        if not math.isnan(x) and not math.isnan(y):
            ax.errorbar([x], [y], yerr=[ye], fmt=marker, color="black", ms=11 if marker == "*" else 7,
                        mfc="white" if key == NOISE else "black", capsize=3, label=label)
    ax.set_xlabel("signed gap to Retrain of the deleted pairs' mean rank percentile\n"
                  "← under-forgetting        over-forgetting →")
    ax.set_ylabel("retain NDCG@20 (test, users outside the request)")
    ax.set_title("retain utility vs forgetting calibration")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    _caption(fig, caption)
    return _save(fig, path)


def seconds_plot(table: dict[str, list[dict[str, Any]]], path: Path, caption: str) -> Path:
    names, means, errs = [], [], []
    for method in [*_methods(table), RT, NOISE]:
        if method not in table:
            continue
        m, s = _mean_std(table[method], "seconds")
        if math.isnan(m):
            continue
        names.append({RT: "Retrain", NOISE: "Retrain (2nd seed)"}.get(method, method))
        means.append(max(m, 1e-6))
        errs.append(s)
    fig = Figure(figsize=(8.0, 1.6 + 0.42 * max(len(names), 1)))
    ax = fig.add_axes((0.28, 0.28, 0.68, 0.62))
    y = np.arange(len(names))
    colors = ["#444444" if n.startswith("Retrain") else "C0" for n in names]
    ax.barh(y, means, xerr=errs, color=colors, capsize=2)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("wall seconds of the unlearning call (log scale; Retrain = full training)")
    ax.set_title("cost per method")
    ax.grid(axis="x", alpha=0.3, which="both")
    for yi, m in zip(y, means, strict=True):
        ax.text(m, yi, f" {m:.3g} s", va="center", fontsize=7)
    _caption(fig, caption)
    return _save(fig, path)


def _density(cells: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray] | None:
    """Pooled histogram of the cells (summed over seeds) as a density over [0, 1]."""
    hists = [c["histogram"] for c in cells if c.get("histogram")]
    if not hists:
        return None
    bins = hists[0]["bins"]
    counts = np.sum([np.asarray(h["counts"], dtype=np.float64) for h in hists if h["bins"] == bins], axis=0)
    total = counts.sum()
    edges = np.linspace(0.0, 1.0, bins + 1)
    return edges, (counts / total * bins if total else counts)


def percentile_plot(cells_by_method: dict[str, list[dict[str, Any]]], path: Path, caption: str) -> Path:
    panels = [m for m in cells_by_method if not m.startswith(REF_PREFIX)]
    if ORIG in cells_by_method:
        panels.append(ORIG)
    n = max(len(panels), 1)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    height = 2.3 * nrows + 1.4
    fig = Figure(figsize=(3.4 * ncols, height))
    rt = _density(cells_by_method.get(RT, []))
    nz = _density(cells_by_method.get(NOISE, []))
    ref_peak = max([float(d[1].max()) for d in (rt, nz) if d is not None and len(d[1])] or [1.0])
    for idx, method in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, idx + 1)
        if rt is not None:
            ax.stairs(rt[1], rt[0], fill=True, color="#cccccc", label="Retrain")
        if nz is not None:
            ax.stairs(nz[1], nz[0], color="#666666", ls="--", lw=0.9, label="Retrain, 2nd seed")
        own = _density(cells_by_method[method])
        label = "Original" if method == ORIG else method
        if own is not None:
            ax.stairs(own[1], own[0], color="C3", lw=1.4, label=label)
            cap = max(3.0 * ref_peak, 1.5)
            peak = float(own[1].max()) if len(own[1]) else 0.0
            if peak > cap:  # keep Retrain's shape readable; say how high the method's spike goes
                ax.set_ylim(0, cap)
                ax.text(0.98, 0.6, f"peak {peak:.0f} (clipped)", transform=ax.transAxes, ha="right",
                        va="top", fontsize=7, color="C3")
        ax.set_title("Original (no unlearning)" if method == ORIG else method, fontsize=9)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
        if idx % ncols == 0:
            ax.set_ylabel("density", fontsize=8)
        if idx >= n - ncols:
            ax.set_xlabel("rank percentile of deleted pairs (0 = top)", fontsize=8)
        ax.legend(fontsize=6, frameon=False, loc="upper center")
    fig.subplots_adjust(bottom=0.95 / height, top=1 - 0.6 / height, hspace=0.55, wspace=0.3)
    fig.suptitle("where the deleted pairs rank: method vs Retrain", fontsize=10)
    _caption(fig, caption)
    return _save(fig, path)


def group_plots(table: dict[str, list[dict[str, Any]]], cells: Sequence[dict[str, Any]], folder: Path,
                stem: str, caption: str) -> list[Path]:
    """The three plots of one group; ``table`` maps method → flat rows, ``cells`` are the raw cells."""
    folder = Path(folder)
    by_method: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        by_method.setdefault(c["cell"]["method"], []).append(c)
    return [tradeoff_plot(table, folder / f"{stem}__tradeoff.png", caption),
            seconds_plot(table, folder / f"{stem}__seconds.png", caption),
            percentile_plot(by_method, folder / f"{stem}__percentiles.png", caption)]


__all__ = ["group_plots", "tradeoff_plot", "seconds_plot", "percentile_plot"]
