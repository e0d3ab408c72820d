"""TRU's parts one at a time: every ``tru-no-*`` ablation beside the TRU of its own results folder.

The overview says whether TRU meets the bars in a cell; this says what each of its interventions (gate,
branch-wise scaling, layer isolation, repair) buys there — a question only a pair answers. An ablation is
paired with the TRU cell of the *same folder, seed and request* (same original, same Retrain), and only
when the two logged settings differ in nothing but the ablated switch and what either selection searched:
a folder whose TRU was rerun under newer defaults beside ablations of the older ones would otherwise credit
the ablated part with the defaults' change. Such cells are counted as left out, with the settings that
differ. The folder's TRU can be older than the overview's TRU row for the same cell (the overview takes
the newest); the TRU gap is therefore printed beside each ablation. A code change is no logged setting: where
a folder's TRU and ablations ran before a change that another folder's TRU and ablations ran after, the
older folder's source says ``ablations = false`` so that its pairs do not count twice, at the old code.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from mmunlearn.bench.grid.results import read_cells
from mmunlearn.bench.overview import CellSummary, Source
from mmunlearn.bench.report import flat_row, format_mean_std, paired_wilcoxon
from mmunlearn.data.requests import REGIMES

ABLATION_PREFIX = "tru-no-"


@dataclass(frozen=True)
class AblationPair:
    """One seed of one ablation beside its folder's TRU: both flat rows (``flat_row``)."""

    folder: str
    dataset: str
    ablation: str
    tru: dict[str, Any]
    ablated: dict[str, Any]

    @property
    def group(self) -> tuple[str, str, str, str]:
        return (self.tru["backbone"], self.dataset, self.tru["regime"], self.ablation)

    def abs_gap_change(self) -> float:
        """|gap| of the ablation − |gap| of TRU: > 0 when removing the part moved the deleted data away
        from where Retrain ranks it (the part helped)."""
        return abs(float(self.ablated["gap"])) - abs(float(self.tru["gap"]))


def settings_apart(tru: dict[str, Any], ablated: dict[str, Any], ablation: str) -> list[str]:
    """The settings two cells ran with different values, less the ablation's preset switch and what either
    selection searched; a setting only one of them logged (the other predates it) counts as different."""
    from mmunlearn.unlearn.base import method_spec

    ignored = set(method_spec(ablation).preset)
    for cell in (tru, ablated):
        ignored |= {k for cand in cell.get("selection", {}).get("grid", []) for k in cand.get("config", {})}
    a, b = (c.get("log", {}).get("config") or {} for c in (tru, ablated))
    return sorted(k for k in a.keys() | b.keys() if k not in ignored and a.get(k) != b.get(k))


def _cells_by_seed(folder: Path, src: Source) -> dict[tuple, dict[str, dict[str, Any]]]:
    """(backbone, regime, seed) → method → cell, for TRU and its ablations within the source's filters."""
    out: dict[tuple, dict[str, dict[str, Any]]] = defaultdict(dict)
    for cell in read_cells(folder):
        key = cell["cell"]
        method = key["method"]
        if method != "tru" and not (method.startswith(ABLATION_PREFIX) and src.ablations):
            continue
        if (src.backbones and key["backbone"] not in src.backbones) or (src.regimes and key["regime"] not in src.regimes):
            continue
        out[(key["backbone"], key["regime"], key["seed"])][method] = cell
    return out


def ablation_pairs(sources: Sequence[tuple[Source, Path]]) -> tuple[list[AblationPair], Counter[str]]:
    """Every valid pair in the manifest's folders (a folder listed twice counts once per cell), and why
    the others were left out."""
    pairs: dict[tuple, AblationPair] = {}
    seen: set[tuple] = set()
    left_out: Counter[str] = Counter()
    for src, folder in sources:
        for methods in _cells_by_seed(folder, src).values():
            tru = methods.get("tru")
            for name, cell in methods.items():
                if name == "tru":
                    continue
                key = (str(folder), *cell["cell"].values())
                if key in seen:
                    continue
                seen.add(key)
                if tru is None:
                    left_out[f"{name}: no TRU cell beside it"] += 1
                    continue
                if tru.get("request", {}).get("hash") != cell.get("request", {}).get("hash"):
                    left_out[f"{name}: another request than its folder's TRU"] += 1
                    continue
                apart = settings_apart(tru, cell, name)
                if apart:
                    left_out[f"{name}: settings apart from its folder's TRU ({', '.join(apart)})"] += 1
                    continue
                pairs[key] = AblationPair(folder=folder.name, dataset=src.dataset, ablation=name,
                                          tru=flat_row(tru), ablated=flat_row(cell))
    return list(pairs.values()), left_out


def _group_summary(group: Sequence[AblationPair]) -> CellSummary:
    """A :class:`CellSummary` holding TRU and the ablation under their own names (for means and bars)."""
    first = group[0]
    summary = CellSummary(first.tru["backbone"], first.dataset, first.tru["regime"],
                          seeds=sorted(int(p.tru["seed"]) for p in group))
    for p in group:
        summary.rows["tru"].append(p.tru)
        summary.rows[p.ablation].append(p.ablated)
        for row in (p.tru, p.ablated):
            if row.get("date"):
                summary.dates.add(str(row["date"])[:10])
    return summary


def ablation_table(pairs: Sequence[AblationPair]) -> str:
    """One row per (backbone, dataset, regime, ablation): TRU and the ablation side by side, over the seeds of
    the folders that hold the pairs."""
    groups: dict[tuple, list[AblationPair]] = defaultdict(list)
    for p in pairs:  # one group across per-seed folders; a seed met twice (two folders) opens another group
        copy = 0
        while any(q.tru["seed"] == p.tru["seed"] for q in groups[(*p.group, copy)]):
            copy += 1
        groups[(*p.group, copy)].append(p)
    order = list(dict.fromkeys(p.dataset for p in pairs))
    regime_rank = {r: i for i, r in enumerate(REGIMES)}
    lines = ["| backbone | dataset | regime | ablation | seeds | TRU gap | ablation gap | Δ\\|gap\\| | "
             "TRU N@20/RT | ablation N@20/RT | ablation ×RT | bars TRU misses | bars the ablation misses | "
             "folders | measured |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|"]
    for key in sorted(groups, key=lambda k: (k[0], order.index(k[1]), regime_rank.get(k[2], 9), k[3], k[4])):
        backbone, dataset, regime, ablation, _ = key
        folders = ", ".join(f"`{f}`" for f in dict.fromkeys(p.folder for p in groups[key]))
        s = _group_summary(groups[key])
        change = sum(p.abs_gap_change() for p in groups[key]) / len(groups[key])
        speed = s.speed_column(ablation)
        dates = sorted(s.dates)[::max(len(s.dates) - 1, 1)]
        cols = [backbone, dataset, regime, ablation, str(len(s.seeds)),
                format_mean_std("{:+.3f}", s.mean("tru", "gap"), None),
                format_mean_std("{:+.3f}", s.mean(ablation, "gap"), s.std(ablation, "gap")),
                f"{change:+.3f}",
                format_mean_std("{:.3f}", s.mean("tru", "ndcg@20_vs_retrain"), None),
                format_mean_std("{:.3f}", s.mean(ablation, "ndcg@20_vs_retrain"), None),
                format_mean_std("{:.0f}", s.mean(ablation, speed), None) + (" (CPU)" if speed == "speedup_cpu" else ""),
                ", ".join(s.misses("tru")) or "none", ", ".join(s.misses(ablation)) or "none",
                folders, " – ".join(dates) or "?"]
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines)


def ablation_tests(pairs: Sequence[AblationPair]) -> list[str]:
    """Per ablation, over every pair: paired Wilcoxon of |gap| (TRU vs the ablation) and the utility change."""
    by_name: dict[str, list[AblationPair]] = defaultdict(list)
    for p in pairs:
        by_name[p.ablation].append(p)
    out = []
    for name in sorted(by_name):
        group = by_name[name]
        res = paired_wilcoxon([abs(float(p.tru["gap"])) for p in group],
                              [abs(float(p.ablated["gap"])) for p in group], "tru", name)
        ties = sum(abs(p.abs_gap_change()) < 1e-4 for p in group)
        util = [float(p.ablated["ndcg@20_vs_retrain"]) - float(p.tru["ndcg@20_vs_retrain"]) for p in group
                if p.ablated.get("ndcg@20_vs_retrain") is not None and p.tru.get("ndcg@20_vs_retrain") is not None]
        line = f"- {name}: {len(group)} pairs, |gap| within 0.0001 of TRU's in {ties}"
        if res["status"] == "ok":
            line += (f"; TRU closer to Retrain in {res['a_better']}, the ablation in {res['b_better']}; median "
                     f"(|gap tru| − |gap {name}|) = {res['median_diff']:+.4f}, Wilcoxon p = {res['p_value']:.3g}")
        else:
            line += f"; too few pairs for a test (n = {res['n']})"
        if util:
            line += f"; N@20/RT change (ablation − TRU): median {median(util):+.3f}"
        out.append(line)
    return out


def ablation_markdown(sources: Sequence[tuple[Source, Path]]) -> str:
    """The overview's ablation section ('' when no folder holds an ablation)."""
    pairs, left_out = ablation_pairs(sources)
    if not pairs and not left_out:
        return ""
    parts = ["## TRU's parts one at a time (ablations)", "",
             "Each `tru-no-*` beside the TRU of its own folder, seed and request (same original, same Retrain), "
             "where the two ran the same settings but the ablated switch and what their selections searched. "
             "Δ|gap| = |gap| of the ablation − |gap| of TRU, mean over seeds: > 0 when the part brought the "
             "deleted data nearer to where Retrain ranks it. The folder's TRU can be older than the table "
             "above's (its gap is printed here); in the user regime TRU does nothing after the reset, so an "
             "ablation there is TRU.", ""]
    if pairs:
        parts += [ablation_table(pairs), "", "Over every pair:"] + ablation_tests(pairs) + [""]
    if left_out:
        parts += ["Left out (not a pair):"] + [f"- {why}: {n} cell(s)" for why, n in sorted(left_out.items())] + [""]
    return "\n".join(parts)


__all__ = ["AblationPair", "ABLATION_PREFIX", "settings_apart", "ablation_pairs", "ablation_table", "ablation_tests",
           "ablation_markdown"]
