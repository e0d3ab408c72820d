"""``mmunlearn demo``: the README's main job, as a one-group grid with a CPU-sized configuration.

On the embedded Amazon Baby interactions it trains MGCN, samples a 5% user request, runs Retrain (and a
second-seed Retrain for the noise floor), MMRecUn and TRU, audits them, prints the table and writes the
report (``results.md``/``results.csv``/plots) plus ``demo.md`` and ``demo.json`` into the output folder.

It is :func:`~mmunlearn.bench.grid.run_grid` on :data:`DEMO_CONFIG` — nothing is duplicated — so the
output folder is a results folder like any other: re-running reuses the trained models and every
finished cell. Two things keep it inside ten minutes on two busy CPU cores, and the demo says both
loudly: a **seeded subsample of Baby's users** (all their interactions kept) and a **fixed epoch budget**
(no early stopping). Baby has no real content here, so MGCN's image and text features are **SYNTHETIC**
(seeded noise; the image width is reduced to 256 to fit the budget): the demo shows the unlearning
machinery and audits, not what real multimodal features do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmunlearn.bench.grid import GridConfig, grid_config, read_cells, run_grid
from mmunlearn.io import atomic_write_json, atomic_write_text

#: the demo's grid: one dataset, one backbone, the user regime, MMRecUn and TRU, one seed
DEMO_CONFIG = GridConfig(
    datasets=("baby",),
    backbones=("mgcn",),
    regimes=("user",),
    methods=("mmrecun", "tru"),
    seeds=(0,),
    ratio=0.05,
    selection="random",
    user_subsample=3000,
    subsample_seed=0,
    synthetic_dims="image=256",
    epochs=12,
    min_epochs=12,
    lr=5e-3,
    select=True,
    user_attack_epochs=12,
)

RULE = "=" * 100
BANNER = (
    f"{RULE}\n"
    "DEMO DATA: Amazon Baby interactions are REAL, but Baby has NO real item content here:\n"
    "MGCN's image and text features are SYNTHETIC (seeded random noise, no item information).\n"
    "These results show the unlearning machinery and its audits, not what real multimodal content does.\n"
    f"{RULE}"
)


def banner(cfg: GridConfig) -> str:
    """The loud content warning: Baby's (fixed text) or a generic one for another demo configuration."""
    if cfg.datasets == ("baby",):
        return BANNER
    return (f"{RULE}\nDEMO DATA: {', '.join(cfg.datasets)} — any modality the data lacks is SYNTHETIC (seeded "
            f"random noise); each modality's provenance is stated in every output.\n{RULE}")


@dataclass
class DemoResult:
    out: Path
    table: str
    seconds: float
    computed: int
    reused: int
    notes: list[str]


def budget_notes(cfg: GridConfig) -> list[str]:
    notes = []
    if cfg.user_subsample:
        notes.append(f"USER SUBSAMPLE: a seeded random {cfg.user_subsample} of Baby's 19,445 users (seed "
                     f"{cfg.subsample_seed}) with all their interactions — not the full dataset — so that the "
                     f"demo fits in 10 minutes on 2 CPU cores")
    if cfg.epochs is not None:
        fixed = cfg.min_epochs is not None and cfg.min_epochs >= cfg.epochs
        notes.append(f"EPOCH BUDGET: originals, Retrain and the attack's shadow model train "
                     f"{'exactly' if fixed else 'at most'} {cfg.epochs} epochs (best-valid epoch kept; "
                     f"lr {cfg.lr if cfg.lr is not None else 'backbone default'}) — far from convergence; "
                     f"`mmunlearn bench run` without these caps trains to early stopping")
    if cfg.synthetic_dims:
        notes.append(f"SYNTHETIC CONTENT WIDTHS: {cfg.synthetic_dims} (MMRec's real features are 4096/384)")
    notes.append("HYPER-PARAMETERS: " + (
        "selected per method by the retrain-free rule (valid utility + proxy target; never test, never Retrain)"
        if cfg.select else "each method's defaults (no selection run)"))
    return notes


def run_demo(out: Path, *, device: str = "cpu", threads: int = 1, config: GridConfig | None = None,
             show_progress: bool = True, echo: Callable[[str], None] = print) -> DemoResult:
    """Run (or resume) the demo into ``out``; ``config`` replaces :data:`DEMO_CONFIG` (tests use a tiny one)."""
    from mmunlearn.bench.report import demo_table, write_report

    cfg = grid_config(("demo config", _as_layer(config or DEMO_CONFIG)))
    out = Path(out)
    start = time.perf_counter()
    loud = banner(cfg)
    echo(loud)
    notes = budget_notes(cfg)
    for note in notes:
        echo(f"NOTE: {note}")
    run = run_grid(cfg, out, device=device, threads=threads, show_progress=show_progress, echo=echo,
                   report=False)
    report = write_report(out)
    cells = read_cells(out)
    wanted = {(d, b, r, s) for d, b, s, r in cfg.groups()}
    cells = [c for c in cells if (c["cell"]["dataset"], c["cell"]["backbone"], c["cell"]["regime"],
                                  c["cell"]["seed"]) in wanted]
    table = demo_table(cells, cfg.methods)
    seconds = time.perf_counter() - start
    ctx = next((c["context"] for c in cells if c.get("context")), {})
    ds = ctx.get("dataset", {})
    provenance = {n: m.get("provenance") + (" (SYNTHETIC)" if m.get("synthetic") else "")
                  for n, m in (ds.get("modalities") or {}).items()}
    header = [
        "# mmunlearn demo: forgetting 5% of users with MMRecUn and TRU, judged against Retrain", "",
        "> **" + loud.replace(RULE, "").strip().replace("\n", "**\n> **") + "**", "",
        f"- dataset: {ds.get('name')} ({ds.get('n_users')} users × {ds.get('n_items')} items, "
        f"{ds.get('train_pairs')} training pairs); backbone: {', '.join(cfg.backbones)}; regime: "
        f"{', '.join(cfg.regimes)}; ratio {cfg.ratio:.0%} ({cfg.selection} selection); seeds "
        f"{', '.join(map(str, cfg.seeds))}",
        "- content provenance: " + (", ".join(f"{k}={v}" for k, v in provenance.items()) or "none"),
        f"- date: {ctx.get('date')}; machine: {ctx.get('machine')}",
        *[f"- {n}" for n in notes], "",
        "Columns: retain Recall/NDCG@20 on test (users outside the request); pct gap to RT = deleted pairs' "
        "mean rank percentile minus Retrain's (negative = under-forgetting, positive = over-forgetting); "
        "forget R@20 = Recall@20 of the deleted pairs (target: Retrain's value); MIA member rate of the "
        "deleted pairs, Retrain's in brackets; CKA of final user/item embeddings to Retrain, the second-seed "
        "Retrain's in brackets (the noise reference); seconds of the unlearning call and speed-up over "
        "Retrain.", "", table, "",
        f"Full report: results.md, results.csv, plots/ (in {out}). Wall time of this demo run: {seconds:.0f} s "
        f"({len(run.computed)} cell(s) computed, {run.skipped} reused).",
    ]
    atomic_write_text(out / "demo.md", "\n".join(header) + "\n")
    atomic_write_json(out / "demo.json", {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "notes": notes, "banner": loud, "content_provenance": provenance, "table_markdown": table,
        "rows": [{"cell": c["cell"], "row": c["row"]} for c in cells],
        "wall_seconds": seconds, "computed_cells": len(run.computed), "reused_cells": run.skipped,
        "report": {"markdown": str(report.markdown), "csv": str(report.csv), "plots": [str(p) for p in report.plots]},
    })
    echo("")
    echo(table)
    echo("")
    echo(loud)
    for note in notes:
        echo(f"NOTE: {note}")
    echo(f"wrote {out / 'demo.md'}, {out / 'demo.json'}, {out / 'results.md'}, {out / 'results.csv'} and "
         f"{len(report.plots)} plot(s) under {out / 'plots'}; {seconds:.0f} s")
    return DemoResult(out=out, table=table, seconds=seconds, computed=len(run.computed), reused=run.skipped,
                      notes=notes)


def _as_layer(cfg: GridConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(cfg)))


__all__ = ["run_demo", "DEMO_CONFIG", "DemoResult", "BANNER", "banner", "budget_notes"]
