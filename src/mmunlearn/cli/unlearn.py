"""``mmunlearn forget sample|show`` and ``mmunlearn unlearn``."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from mmunlearn.cli.common import parse_sets
from mmunlearn.data.requests import REGIMES, SELECTIONS, load_request, sample_request, save_request
from mmunlearn.errors import InputError


@click.group("forget")
def forget_group() -> None:
    """Forget requests: sample one by regime, or inspect one."""


@forget_group.command("sample")
@click.option("--dataset", default=None, help="baby (embedded), synthetic, movielens-100k, or a folder/.inter path")
@click.option("--checkpoint", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="sample from the data of this run instead (e.g. an already unlearned one)")
@click.option("--regime", type=click.Choice(REGIMES), required=True, help="what a request deletes")
@click.option("--ratio", type=float, default=0.05, show_default=True, help="share of users/items/pairs")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--selection", type=click.Choice(SELECTIONS), default="random", show_default=True,
              help="user/item selection: random, core (most active first), edge (least active first)")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="request JSON")
def forget_sample(dataset, run_dir, regime, ratio, seed, selection, out) -> None:
    """Sample a seeded forget request and write it as JSON (with its content hash)."""
    if (dataset is None) == (run_dir is None):
        raise InputError("give exactly one of --dataset or --checkpoint")
    if run_dir is not None:
        from mmunlearn.unlearn.runner import load_run

        data = load_run(run_dir).data
    else:
        from mmunlearn.data.registry import load_dataset

        data = load_dataset(dataset)
    req = sample_request(data, regime, ratio=ratio, seed=seed, selection=selection)
    save_request(out, req)
    click.echo(f"{req.describe()} from {data.name}")
    click.echo(f"wrote {out}")


@forget_group.command("show")
@click.argument("request", type=click.Path(dir_okay=False, path_type=Path))
def forget_show(request) -> None:
    """Print a request's hash, provenance and size (checks the hash)."""
    req = load_request(request)
    click.echo(req.describe())
    click.echo(f"hash {req.hash}")
    if req.dataset:
        click.echo(f"dataset {req.dataset.get('name')} (fingerprint {str(req.dataset.get('fingerprint'))[:12]})")


@click.command("unlearn")
@click.option("--checkpoint", "run_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="run folder of the model to unlearn (never modified)")
@click.option("--request", "request_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="forget request JSON (mmunlearn forget sample)")
@click.option("--method", default="tru", show_default=True,
              help="retrain, rebuild, rebuild-reset, finetune, neggrad, mmrecun, tru, tru-no-gate, "
                   "tru-no-scaling, tru-no-isolation; sisa, receraser (sharded checkpoints: train --shards)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="child run folder")
@click.option("--device", default="cpu", show_default=True, help="torch device: cpu or cuda")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML/JSON whose [unlearn] section overrides the method's config")
@click.option("--set", "sets", multiple=True, help="method config override key=value (e.g. lr=0.5)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--select", is_flag=True, help="choose hyper-parameters with the retrain-free rule (valid + proxy)")
@click.option("--threads", type=int, default=None, help="torch threads")
@click.option("--force", is_flag=True, help="redo a request already in the ledger / overwrite --out")
def unlearn_cmd(run_dir, request_path, method, out, device, config_file, sets, seed, select, threads, force) -> None:
    """Unlearn a request from a checkpoint into a new run folder; record it in the parent's ledger."""
    from mmunlearn.unlearn.base import method_names
    from mmunlearn.unlearn.runner import unlearn_checkpoint

    if method not in method_names():
        raise InputError(f"--method {method!r}: unknown; available: {', '.join(method_names())}")
    if threads:
        torch.set_num_threads(threads)
    rep = unlearn_checkpoint(run_dir, request_path, method, out, device=device, config_file=config_file,
                             overrides=parse_sets(sets), seed=seed, force=force, select=select)
    m = rep.metrics
    click.echo(f"{method}: {rep.seconds:.2f} s for {m['forget_pairs']} deleted pairs")
    click.echo(f"valid  recall@20={m['valid_recall@20']:.4f}  ndcg@20={m['valid_ndcg@20']:.4f}")
    click.echo(f"forgetting proxy: deleted pairs' mean rank percentile {m['proxy_pct_mean']:.3f} "
               f"(retrain-free target {m['proxy_target_mean']:.3f}, gap {m['proxy_gap']:+.3f})")
    if rep.entry.get("forced"):
        click.echo("note: this request had already been processed on this checkpoint (--force)")
    click.echo(f"saved  {out}; ledger {Path(run_dir) / 'ledger.jsonl'}")


COMMANDS = [forget_group, unlearn_cmd]
