"""Where TRU stands in every measured (backbone, dataset, regime) cell, against SPEC's bars, in one place.

The measurements of a grid this size come from many results folders — one per session, dataset, seed or
code change — and a folder can be superseded for one regime and not for the others. A *manifest* (TOML,
one section per source) says which folder holds the current measurement of which cells and how to name
their dataset (content included: "Sports (real text)"), so the overview is rebuilt from cell files by one
command instead of being copied by hand; ``docs/results/overview.toml`` is the repository's own.

Two folders may feed one cell (e.g. TRU rerun with newer code beside the older grid's MMRecUn) only when
they were run on the same request: rows of one (dataset, backbone, regime, seed) with different request
hashes are refused, and so is a method measured twice for one cell.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmunlearn.bench.grid.results import read_cells
from mmunlearn.bench.report import flat_row, format_mean_std, mean_std, wilcoxon_abs_gap, wilcoxon_text
from mmunlearn.config import build, load_config_file, option
from mmunlearn.data.requests import REGIMES
from mmunlearn.errors import InputError

#: SPEC §6 / issue #11's bars, on the mean over seeds
MAX_ABS_GAP = 0.03
MIN_UTILITY = 0.97
MIN_SPEEDUP = 20.0
MAX_MIA_DIFF = 0.05
MIN_SEEDS = 3
#: how the table names a gap miss that the second-seed Retrain shares (still a miss: the cell is not counted as met)
NOISE_GAP_MISS = "gap (2nd-seed Retrain too)"


@dataclass(frozen=True)
class Source:
    """One manifest section: a results folder and what of it counts."""

    folder: str = option("", "results folder, relative to the manifest's own folder")
    dataset: str = option("", "the dataset's name in the overview, content included (e.g. 'Sports (real text)')")
    backbones: tuple[str, ...] = option((), "only these backbones of the folder (empty: all)")
    regimes: tuple[str, ...] = option((), "only these regimes of the folder (empty: all)")
    methods: tuple[str, ...] = option((), "only these methods / references of the folder (empty: all)")
    note: str = option("", "a remark printed under the backbone's table (e.g. why a cell is superseded)")
    ablations: bool = option(True, "pair the folder's tru-no-* cells with its TRU in the ablation section; false "
                                   "where they ran beside a TRU that another folder's (newer code) supersedes")


@dataclass
class CellSummary:
    """TRU and its comparators in one (backbone, dataset, regime), means over the seeds TRU ran."""

    backbone: str
    dataset: str
    regime: str
    seeds: list[int]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))  # method → per seed
    dates: set[str] = field(default_factory=set)

    def off_default(self) -> str:
        """TRU's settings here that are not today's defaults, with how many seeds ran each ('' = none)."""
        counts = Counter(item for r in self.rows.get("tru", []) for item in r.get("off_default", ()))
        return ", ".join(f"{item} ({n}/{len(self.seeds)})" for item, n in sorted(counts.items()))

    def mean(self, method: str, column: str) -> float | None:
        return mean_std(self.rows.get(method, []), column)[0]

    def std(self, method: str, column: str) -> float | None:
        return mean_std(self.rows.get(method, []), column)[1]

    def count(self, method: str, column: str) -> int:
        return mean_std(self.rows.get(method, []), column)[2]

    def speed_column(self, method: str = "tru") -> str:
        """``speedup_cpu`` where every seed of ``method`` has it (CPU seconds on both sides: the load does not
        move it), else the wall-clock ``speedup``."""
        rows = self.rows.get(method, [])
        cpu = bool(rows) and all(r.get("speedup_cpu") is not None for r in rows)
        return "speedup_cpu" if cpu else "speedup"

    def retrain_misses_gap(self) -> bool:
        """The second-seed Retrain's own mean gap misses the gap bar: there the bar lies inside Retrain's seed
        noise, and a method's miss says nothing a second Retrain would not (MIG-GT Baby user, BENCHMARKS §9t)."""
        noise = self.mean("ref-retrain-noise", "gap")
        return noise is not None and abs(noise) > MAX_ABS_GAP

    def misses(self, method: str = "tru") -> list[str]:
        """The bars ``method``'s means miss here (empty: all met)."""
        out = []
        gap, util = self.mean(method, "gap"), self.mean(method, "ndcg@20_vs_retrain")
        speed = self.mean(method, self.speed_column(method))
        mia, mia_rt = self.mean(method, "mia_member_rate"), self.mean(method, "mia_member_rate_retrain")
        if gap is None or abs(gap) > MAX_ABS_GAP:
            out.append("gap")
        if util is None or util < MIN_UTILITY:
            out.append("utility")
        if speed is None or speed < MIN_SPEEDUP:
            out.append("speed")
        if mia is None or mia_rt is None or abs(mia - mia_rt) > MAX_MIA_DIFF:
            out.append("MIA")
        if len(self.seeds) < MIN_SEEDS:
            out.append(f"seeds ({len(self.seeds)})")
        return out


def load_manifest(path: Path) -> list[tuple[Source, Path]]:
    """The manifest's sources with their folders resolved; a missing folder or field is a one-line error."""
    sections = load_config_file(path)
    if not sections:
        raise InputError(f"{path}: the manifest names no source (one [section] per results folder)")
    sources = []
    for name, table in sections.items():
        src = build(Source, (f"{path} [{name}]", table))
        if not src.folder or not src.dataset:
            raise InputError(f"{path} [{name}]: 'folder' and 'dataset' are required")
        folder = (Path(path).parent / src.folder).resolve()
        if not (folder / "cells").is_dir():
            raise InputError(f"{path} [{name}]: {folder} holds no cells/ (not a results folder)")
        sources.append((src, folder))
    return sources


def off_default(cell: dict[str, Any], defaults: dict[str, Any],
                scopes: dict[str, frozenset[str]] | None = None) -> tuple[str, ...]:
    """The settings a TRU cell ran that differ from ``defaults`` (today's), leaving out what its selection
    searched and settings that did not act on its request; a setting the cell predates is ``name absent``.

    ``scopes`` (default: TRUConfig's ``option(acts_in=...)``) maps a setting to the request counts of which
    one must be non-zero for it to act — ``pair_rows`` only moves deleted interactions of no fully deleted
    user or item (``request_pairs``), ``item_reference`` only places fully deleted items
    (``deleted_items``, which a user request can empty too). Results folders outlive defaults: without this
    a cell measured before a default changed would pass for today's TRU in the overview."""
    ran = cell.get("log", {}).get("config") or {}
    request = cell.get("request", {})
    scopes = _tru_scopes() if scopes is None else scopes
    searched = {k for cand in cell.get("selection", {}).get("grid", []) for k in cand.get("config", {})}
    out = []
    for key in sorted(defaults):
        acts = key not in scopes or any(request.get(count, 0) > 0 for count in scopes[key])
        if key in searched or not acts:
            continue
        if key not in ran:
            out.append(f"{key} absent")
        elif ran[key] != defaults[key]:
            out.append(f"{key}={ran[key]}")
    return tuple(out)


def _tru_scopes() -> dict[str, frozenset[str]]:
    from mmunlearn.config import acts_in
    from mmunlearn.unlearn.base import method_spec

    return acts_in(method_spec("tru").config_cls)


def _tru_defaults() -> dict[str, Any]:
    from dataclasses import asdict

    from mmunlearn.bench.grid.results import jsonable
    from mmunlearn.unlearn import method_config

    return jsonable(asdict(method_config("tru")))


def collect_rows(sources: Sequence[tuple[Source, Path]]) -> list[dict[str, Any]]:
    """Flat rows of every source's selected cells, ``dataset`` renamed to the manifest's name; TRU rows carry
    the settings they ran off today's defaults (``off_default``)."""
    rows: list[dict[str, Any]] = []
    seen: dict[tuple, Path] = {}
    requests: dict[tuple, tuple[str, Path]] = {}
    defaults = _tru_defaults()
    for src, folder in sources:
        for cell_record in read_cells(folder):
            row = flat_row(cell_record)
            if ((src.backbones and row["backbone"] not in src.backbones)
                    or (src.regimes and row["regime"] not in src.regimes)
                    or (src.methods and row["method"] not in src.methods)):
                continue
            row = {**row, "dataset": src.dataset, "source": str(folder),
                   "off_default": off_default(cell_record, defaults) if row["method"] == "tru" else ()}
            cell = (row["dataset"], row["backbone"], row["regime"], row["seed"])
            key = (*cell, row["method"])
            if key in seen:
                raise InputError(f"{folder}: {'/'.join(map(str, key))} is also taken from {seen[key]}; "
                                 "narrow one source's regimes/methods")
            seen[key] = folder
            digest = row.get("request_hash") or ""
            if cell in requests and requests[cell][0] != digest:
                raise InputError(f"{folder}: {'/'.join(map(str, cell))} was run on request {digest or '?'}, "
                                 f"but {requests[cell][1]} on {requests[cell][0] or '?'}; only one request per cell")
            requests.setdefault(cell, (digest, folder))
            rows.append(row)
    return rows


def summarise(rows: Sequence[dict[str, Any]]) -> list[CellSummary]:
    """One summary per (backbone, dataset, regime) where TRU ran, in manifest order of datasets."""
    cells: dict[tuple[str, str, str], CellSummary] = {}
    order = list(dict.fromkeys(r["dataset"] for r in rows))
    for r in rows:
        key = (r["backbone"], r["dataset"], r["regime"])
        cell = cells.setdefault(key, CellSummary(*key, seeds=[]))
        cell.rows[r["method"]].append(r)
        if r["method"] == "tru":
            cell.seeds.append(int(r["seed"]))
            if r.get("date"):
                cell.dates.add(str(r["date"])[:10])
    out = [c for c in cells.values() if c.seeds]
    for c in out:
        c.seeds.sort()
    regime_rank = {r: i for i, r in enumerate(REGIMES)}
    return sorted(out, key=lambda c: (c.backbone, order.index(c.dataset), regime_rank.get(c.regime, 9)))


def _comparator(cell: CellSummary, method: str) -> str:
    """A comparator's mean gap, with its seed count where it ran on fewer seeds than TRU."""
    n = cell.count(method, "gap")
    text = format_mean_std("{:+.3f}", cell.mean(method, "gap"), None)
    return text if n in (0, len(cell.seeds)) else f"{text} (n = {n})"


def _tru(cell: CellSummary, column: str, fmt: str) -> str:
    return format_mean_std(fmt, cell.mean("tru", column), None)


def backbone_table(cells: Sequence[CellSummary]) -> str:
    lines = ["| dataset | regime | seeds | TRU gap | KS | MIA (Retrain) | N@20/RT | ×RT | MMRecUn gap | "
             "rebuild-reset gap | Retrain 2nd seed gap | misses | TRU off today's defaults | measured |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for c in cells:
        misses = [NOISE_GAP_MISS if m == "gap" and c.retrain_misses_gap() else m for m in c.misses()]
        speed = c.speed_column()
        dates = sorted(c.dates)[::max(len(c.dates) - 1, 1)]  # the first and the last
        cols = [c.dataset, c.regime, str(len(c.seeds)), format_mean_std("{:+.3f}", c.mean("tru", "gap"), c.std("tru", "gap")),
                _tru(c, "ks", "{:.3f}"),
                f"{_tru(c, 'mia_member_rate', '{:.3f}')} ({_tru(c, 'mia_member_rate_retrain', '{:.3f}')})",
                _tru(c, "ndcg@20_vs_retrain", "{:.3f}"),
                _tru(c, speed, "{:.0f}") + (" (CPU)" if speed == "speedup_cpu" else ""),
                _comparator(c, "mmrecun"), _comparator(c, "rebuild-reset"), _comparator(c, "ref-retrain-noise"),
                ", ".join(misses) if misses else "none", c.off_default() or "–", " – ".join(dates) or "?"]
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines)


def overview_markdown(sources: Sequence[tuple[Source, Path]], manifest: Path, extra: Sequence[str] = ()) -> str:
    """The overview: one table per backbone, the paired tests, the notes, ``extra`` sections (the CLI adds
    the ablations', ``bench/ablations.py``, which builds on this module) and the machines."""
    rows = collect_rows(sources)
    cells = summarise(rows)
    parts = [f"# TRU across the measured grid (from `{manifest}`)", "",
             f"Means over the seeds TRU ran. Bars (SPEC §6, issue #11): |gap| ≤ {MAX_ABS_GAP}, N@20/RT ≥ "
             f"{MIN_UTILITY}, ×RT ≥ {MIN_SPEEDUP:.0f}, |MIA − Retrain's| ≤ {MAX_MIA_DIFF}, ≥ {MIN_SEEDS} seeds; "
             f"`misses` lists the bars a cell does not meet (`{NOISE_GAP_MISS}`: the Retrain trained again with "
             "another seed misses the gap bar there as well). ×RT is Retrain's seconds ÷ TRU's: CPU seconds where "
             "every seed logged them (marked CPU; the load does not move them), else wall seconds on a shared "
             "machine (see each folder's results.md for the load). TRU rows are what TRU's defaults were on "
             "each cell's date; `TRU off today's defaults` names the settings (not searched by the selection, "
             "acting on the cell's request) a cell's seeds ran with other values than today's, or predate (docs/"
             "CHANGELOG.md says when each changed).", ""]
    notes: dict[str, list[str]] = defaultdict(list)  # backbone → the notes of the sources it was read from
    for src, folder in sources:
        if not src.note:
            continue
        for backbone in dict.fromkeys(r["backbone"] for r in rows if r["source"] == str(folder)):
            notes[backbone].append(f"{src.dataset}: {src.note}")
    for backbone in sorted({c.backbone for c in cells}):
        mine = [c for c in cells if c.backbone == backbone]
        met = sum(not c.misses() for c in mine)
        parts += [f"## {backbone}: {met} of {len(mine)} cells meet every bar", "", backbone_table(mine), ""]
        parts += [f"- {n}" for n in notes.get(backbone, [])]
        parts += ["", "Paired Wilcoxon of |gap|, TRU vs MMRecUn, this backbone's cells:",
                  wilcoxon_text(wilcoxon_abs_gap([r for r in rows if r["backbone"] == backbone]), backbone), ""]
    parts += ["## All cells pooled", "", wilcoxon_text(wilcoxon_abs_gap(rows), "every (backbone, dataset, regime, "
                                                                          "seed) cell with both methods"), ""]
    parts += [section for section in extra if section]
    machines = sorted({str(r["machine"]).split(", load avg")[0] for r in rows if r.get("machine")})
    parts += ["## Sources", ""] + [f"- `{src.folder}` → {src.dataset}"
                                   + (f" ({', '.join(src.regimes)})" if src.regimes else "")
                                   + (f" [{', '.join(src.methods)}]" if src.methods else "")
                                   for src, _ in sources]
    parts += ["", "Machines (each cell's load average is in its folder's results.csv): " + "; ".join(machines), ""]
    return "\n".join(parts)


__all__ = ["Source", "CellSummary", "load_manifest", "off_default", "collect_rows", "summarise", "backbone_table",
           "overview_markdown", "MAX_ABS_GAP", "MIN_UTILITY", "MIN_SPEEDUP", "MAX_MIA_DIFF", "MIN_SEEDS"]
