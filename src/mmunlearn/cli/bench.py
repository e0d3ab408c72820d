"""``mmunlearn bench run | report | paired | overview | status | speed`` and ``mmunlearn demo``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mmunlearn.cli.common import parse_sets
from mmunlearn.config import describe_config
from mmunlearn.errors import InputError


def _split(value: str | None, *, ints: bool = False) -> list | None:
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if ints:
        try:
            return [int(p) for p in parts]
        except ValueError:
            raise InputError(f"expected comma-separated integers, got {value!r}") from None
    return parts


def _grid_fields_help() -> str:
    from mmunlearn.bench.grid import GridConfig

    lines = ["\b", "Grid config fields ([grid] table of --config; flags override the file):"]
    for name, typ, default, help_ in describe_config(GridConfig):
        lines.append(f"  {name} ({typ}, default {default}): {help_}")
    return "\n".join(lines)


@click.group()
def bench() -> None:
    """The unlearning experiment grid, its report, and speed/memory measurements."""


@bench.command(epilog=_grid_fields_help())
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="grid file (TOML/JSON): [grid] fields, [model.<backbone>] and [method.<name>] tables")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="results folder")
@click.option("--datasets", help="comma-separated datasets (baby, synthetic, movielens-100k, paths)")
@click.option("--backbones", help="comma-separated backbones (lightgcn, mgcn, miggt)")
@click.option("--regimes", help="comma-separated regimes (user, item, interaction)")
@click.option("--methods", help="comma-separated unlearning methods (Retrain always runs as the reference)")
@click.option("--seeds", help="comma-separated integer seeds")
@click.option("--ratio", type=float, help="share deleted (default 0.05)")
@click.option("--selection", type=click.Choice(["random", "core", "edge"]), help="user/item selection")
@click.option("--user-subsample", type=int, help="keep a seeded subset of this many users (0 = all)")
@click.option("--epochs", type=int, help="training epoch cap for originals and Retrain")
@click.option("--min-epochs", type=int, help="early stopping may not fire before this epoch")
@click.option("--patience", type=int, help="evaluations without improvement before stopping")
@click.option("--lr", type=float, help="training learning rate")
@click.option("--batch-size", type=int, help="training batch size")
@click.option("--set-model", "model_sets", multiple=True, help="backbone override backbone.key=value (repeatable)")
@click.option("--set-method", "method_sets", multiple=True, help="method override method.key=value (repeatable)")
@click.option("--set", "sets", multiple=True, help="any grid field key=value (e.g. mia=false, hist_bins=40)")
@click.option("--select/--no-select", default=None, help="retrain-free hyper-parameter selection (default on)")
@click.option("--mia/--no-mia", default=None, help="interaction-level membership inference audit")
@click.option("--user-attack/--no-user-attack", default=None, help="user-level attack (user regime)")
@click.option("--cka/--no-cka", default=None, help="linear CKA audit")
@click.option("--overlap/--no-overlap", default=None, help="top-K Jaccard audit")
@click.option("--extend", is_flag=True, help="allow adding cells to a results folder made with a subset grid")
@click.option("--rerun", help="comma-separated methods whose finished cells are computed again (e.g. after a "
                               "default changed) on the folder's own originals, requests and Retrains")
@click.option("--device", default="cpu", show_default=True, help="torch device: cpu or cuda")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch threads (1 on a shared machine)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def run(config_file, out, datasets, backbones, regimes, methods, seeds, ratio, selection, user_subsample, epochs,
        min_epochs, patience, lr, batch_size, model_sets, method_sets, sets, select, mia, user_attack, cka, overlap,
        extend, rerun, device, threads, quiet) -> None:
    """Run a grid datasets × backbones × regimes × methods × seeds into OUT (resumable), then report.

    Originals and Retrain (plus a second-seed Retrain, the noise floor) are trained once and shared by
    every method; each finished cell is written at once as JSON, so an interrupted grid resumes where it
    stopped. A results folder made with a different grid is refused unless --extend (superset only).
    """
    from mmunlearn.bench.grid import file_layer, grid_config, run_grid

    flags = {"datasets": _split(datasets), "backbones": _split(backbones), "regimes": _split(regimes),
             "methods": _split(methods), "seeds": _split(seeds, ints=True), "ratio": ratio,
             "selection": selection, "user_subsample": user_subsample, "epochs": epochs,
             "min_epochs": min_epochs, "patience": patience, "lr": lr, "batch_size": batch_size,
             "select": select, "mia": mia, "user_attack": user_attack, "cka": cka, "overlap": overlap,
             "model_sets": list(model_sets) or None, "method_sets": list(method_sets) or None}
    cfg = grid_config(file_layer(config_file), ("--set", parse_sets(sets)), ("command line", flags))
    res = run_grid(cfg, out, extend=extend, device=device, threads=threads, show_progress=not quiet,
                   echo=click.echo, rerun=_split(rerun) or ())
    click.echo(f"grid {res.hash[:12]}: {len(res.computed)} cell(s) computed, {res.skipped} reused "
               f"({res.seconds:.0f} s); report: {out / 'results.md'}, {out / 'results.csv'}, {out / 'plots'}")


@bench.command()
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--no-plots", is_flag=True, help="tables only")
def report(results_dir, no_plots) -> None:
    """Write results.csv, results.md and the plots of RESULTS_DIR from its cell files (no model needed)."""
    from mmunlearn.bench.report import write_report

    rep = write_report(results_dir, plots=not no_plots)
    click.echo(f"wrote {rep.csv}, {rep.markdown} and {len(rep.plots)} plot(s)")
    for baseline, by_scope in rep.wilcoxon.items():
        for scope, res in by_scope.items():
            click.echo(f"wilcoxon |gap| tru vs {baseline}, {scope}: " + (
                f"n={res['n']}, p={res['p_value']:.3g}" if res["status"] == "ok" else f"{res['status']} (n={res['n']})"))


@bench.command()
@click.argument("results_dirs", nargs=-1, required=True,
                type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--a", "method_a", default="tru", show_default=True, help="the method under test")
@click.option("--b", "method_b", default="mmrecun", show_default=True, help="the baseline")
def paired(results_dirs, method_a, method_b) -> None:
    """Paired Wilcoxon test of |gap to Retrain|, A vs B, over the cells of several RESULTS_DIRS pooled
    (e.g. the LightGCN and the MGCN grid); a cell present in two folders is refused."""
    from mmunlearn.bench.report import pooled_test, wilcoxon_text

    res = pooled_test(results_dirs, method_a, method_b)
    click.echo(wilcoxon_text(res, ", ".join(str(d) for d in results_dirs)).removeprefix("- "))


@bench.command()
@click.argument("manifest", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write the Markdown here (default: print)")
def overview(manifest, out) -> None:
    """One table per backbone of TRU against SPEC's bars in every cell the MANIFEST's results folders hold
    (TOML: one [section] per folder, see docs/results/overview.toml), with the paired tests vs MMRecUn and
    every TRU ablation beside the TRU of its own folder."""
    from mmunlearn.bench.ablations import ablation_markdown
    from mmunlearn.bench.overview import load_manifest, overview_markdown
    from mmunlearn.io import atomic_write_text

    sources = load_manifest(manifest)
    text = overview_markdown(sources, manifest, extra=[ablation_markdown(sources)])
    if out is None:
        click.echo(text)
    else:
        atomic_write_text(out, text)
        click.echo(f"wrote {out}")


@bench.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
def status(folders) -> None:
    """How far each results folder is: finished cells per (dataset, backbone, regime, seed), the saved
    originals and Retrains, and any training under way or stopped half-way (a stopped one goes on from its
    snapshot when `bench run` runs again). Reads only."""
    from mmunlearn.bench.status import folder_status

    for folder in folders:
        click.echo("\n".join(folder_status(folder).lines()))


@bench.command()
@click.option("--dataset", default="baby", show_default=True, help="dataset name or path")
@click.option("--models", default="lightgcn,mgcn,miggt", show_default=True, help="comma-separated backbones")
@click.option("--threads", default="1", show_default=True, help="comma-separated thread counts")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True, help="timed epochs after one warm-up epoch")
@click.option("--eval-passes", type=click.IntRange(min=1), default=3, show_default=True, help="timed full evaluation passes")
@click.option("--batch-size", type=click.IntRange(min=1), default=2048, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write the rows as JSON here")
def speed(dataset, models, threads, epochs, eval_passes, batch_size, device, out) -> None:
    """Seconds per training epoch and per full evaluation pass, and peak RSS, each case in its own process.

    Only meaningful on an otherwise idle machine (the thread count is part of the result).
    """
    from mmunlearn.bench.speed import SpeedCase, measure_in_subprocess
    from mmunlearn.io import atomic_write_json
    from mmunlearn.models.registry import MODELS

    names = _split(models) or []
    for m in names:
        if m not in MODELS:
            raise InputError(f"--models: unknown backbone {m!r}; available: {', '.join(sorted(MODELS))}")
    rows = []
    for t in _split(threads, ints=True) or [1]:
        for m in names:
            case = SpeedCase(dataset=dataset, model=m, threads=t, epochs=epochs, batch_size=batch_size,
                             device=device, eval_passes=eval_passes)
            try:
                row = measure_in_subprocess(case)
            except RuntimeError as exc:
                lines = str(exc).strip().splitlines()
                raise InputError(f"{lines[0].rstrip(':')}: {lines[-1] if len(lines) > 1 else ''}") from None
            rows.append(row)
            click.echo(f"{Path(dataset).name:16s} {m:9s} threads={t} epoch={row['epoch_seconds_median']:.2f}s "
                       f"eval={row['eval_seconds_median']:.2f}s peak_rss={row['peak_rss_mib']:.0f}MiB "
                       f"content={json.dumps(row['content'])}")
    if out is not None:
        atomic_write_json(out, rows)
        click.echo(f"wrote {out}")


@click.command()
@click.option("--out", default=Path("runs/demo"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="output folder (re-running resumes it)")
@click.option("--device", default="cpu", show_default=True, help="torch device: cpu or cuda")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch threads")
@click.option("--quiet", is_flag=True, help="no progress bar")
def demo(out, device, threads, quiet) -> None:
    """Train MGCN on (a user subsample of) the embedded Baby data, forget 5% of users with Retrain, MMRecUn
    and TRU, audit them, print the table and write plots + JSON + Markdown to OUT.

    Baby has no real item content here: MGCN's image/text features are SYNTHETIC (said loudly in every
    output). A fixed epoch budget and a seeded user subsample keep it under 10 minutes on 2 CPU cores.
    """
    from mmunlearn.bench.demo import run_demo

    run_demo(out, device=device, threads=threads, show_progress=not quiet, echo=click.echo)


COMMANDS = [bench, demo]
