"""``mmunlearn train | evaluate | recommend``."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch

from mmunlearn.cli.common import device_option, echo_json, metrics_line, parse_sets, run_dir_argument
from mmunlearn.config import build, load_config_file
from mmunlearn.errors import InputError
from mmunlearn.evaluate.ranking import DEFAULT_KS, evaluate_split, split_mask, top_k
from mmunlearn.io import check_target_dir
from mmunlearn.models.registry import MODELS, model_config
from mmunlearn.pipeline import (
    DataSpec,
    load_data_and_model,
    prepare_for_model,
    provenance_lines,
    train_and_save,
)
from mmunlearn.train.trainer import TrainConfig


@click.command()
@click.option("--dataset", default=None, help="baby (embedded, default), synthetic, movielens-100k, or a path")
@click.option("--model", "model_name", default=None, type=click.Choice(sorted(MODELS)), help="backbone")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="run folder")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML/JSON with [data], [model], [train] sections (CLI flags override it)")
@click.option("--epochs", type=int, help="maximum epochs")
@click.option("--batch-size", type=int)
@click.option("--lr", type=float)
@click.option("--min-epochs", type=int, help="early stopping may not fire before this epoch")
@click.option("--patience", type=int, help="evaluations without improvement before stopping")
@click.option("--seed", type=int)
@click.option("--device", default=None, help="torch device: cpu (default) or cuda")
@click.option("--threads", type=int, help="torch threads (default 2; use 1 on a busy machine)")
@click.option("--feature-seed", type=int, help="seed of synthetic content where real content is missing")
@click.option("--set", "sets", multiple=True, help="model config override key=value (e.g. n_layers=2)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--force", is_flag=True, help="replace an existing run at --out (written beside it, then swapped in)")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="local processes (torch.distributed: gloo on CPU, NCCL on CUDA); data-parallel, or with "
                   "--shards the shards in parallel")
@click.option("--shards", type=click.IntRange(min=0), default=0, show_default=True,
              help="train a sharded model of K backbones for exact unlearning (sisa / receraser); 0 = one model")
@click.option("--partition", type=click.Choice(["random", "user", "item"]), default="random", show_default=True,
              help="with --shards: random user shards (SISA) or RecEraser's balanced user / item partition")
@click.option("--aggregator", type=click.Choice(["auto", "mean", "attention"]), default="auto", show_default=True,
              help="with --shards: mean of shard scores (SISA) or attention (RecEraser); auto: mean for random")
def train(dataset, model_name, out, config_file, epochs, batch_size, lr, min_epochs, patience, seed, device,
          threads, feature_seed, sets, quiet, force, nproc, shards, partition, aggregator) -> None:
    """Train a backbone with early stopping on valid Recall@20; evaluate test once at the best epoch."""
    file_cfg = load_config_file(config_file)
    where = str(config_file)
    model_name = model_name or file_cfg.get("model", {}).get("name") or "lightgcn"
    if model_name not in MODELS:
        raise InputError(f"unknown model {model_name!r}; available: {sorted(MODELS)}")
    if model_name == "sharded":
        raise InputError("--model sharded: give the backbone and --shards K instead (e.g. --model lightgcn --shards 4)")
    model_file = {k: v for k, v in file_cfg.get("model", {}).items() if k != "name"}
    mcfg = model_config(model_name, (where, model_file), ("--set", parse_sets(sets)))
    model_defaults = {"lr": MODELS[model_name][0].recommended_lr}
    tcfg = build(TrainConfig, (f"defaults of {model_name}", model_defaults), (where, file_cfg.get("train", {})),
                 ("command line", {"epochs": epochs, "batch_size": batch_size, "lr": lr,
                                   "min_epochs": min_epochs, "patience": patience, "seed": seed,
                                   "device": device, "threads": threads}))
    spec = build(DataSpec, (where, file_cfg.get("data", {})),
                 ("command line", {"dataset": dataset, "feature_seed": feature_seed}))
    check_target_dir(out, force=force)  # before any data is loaded or epoch run
    prepared = prepare_for_model(spec.dataset, spec.feature_seed, model_name, mcfg)
    for warning in prepared.warnings:
        click.secho(f"WARNING: {warning}", fg="yellow", err=True)
    click.echo(f"dataset {prepared.data.name}: {prepared.data.n_users} users, {prepared.data.n_items} items")
    for line in provenance_lines(prepared.data):
        click.echo(line)
    if shards:
        from mmunlearn.models.sharded import sharded_config

        model_name, mcfg = "sharded", sharded_config(model_name, mcfg, shards, partition, aggregator, tcfg.seed)
        click.echo(f"sharded: {shards} {mcfg.backbone} shards, {partition} partition, {mcfg.aggregator} aggregator")
    run = train_and_save(prepared, model_name, mcfg, tcfg, out, show_progress=not quiet, force=force, nproc=nproc)
    if not run.meta:  # a torchrun rank other than 0: rank 0 reports and saves
        return
    if shards:
        click.echo(f"trained {shards} shards and the aggregator ({run.result.seconds:.1f} s)")
    else:
        click.echo(f"best valid epoch {run.result.best_epoch} of {run.result.epochs_run} "
                   f"({run.result.seconds:.1f} s)")
    click.echo(f"valid  {metrics_line(run.valid)}")
    click.echo(f"test   {metrics_line(run.test)}")
    click.echo(f"saved  {out}")


@click.command()
@run_dir_argument
@device_option
@click.option("--split", type=click.Choice(["valid", "test"]), default="test", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print all metrics as JSON")
def evaluate(run_dir, device, split, as_json) -> None:
    """Full-ranking metrics of a saved run (Recall, NDCG, Precision, MAP, HitRate @5/10/20/50)."""
    ckpt = load_data_and_model(run_dir, device=device)
    metrics = evaluate_split(ckpt.model, ckpt.data, split, ks=DEFAULT_KS)
    if as_json:
        echo_json(metrics)
        return
    for line in provenance_lines(ckpt.data):
        click.echo(line)
    for k in DEFAULT_KS:
        keys = tuple(f"{m}@{k}" for m in ("recall", "ndcg", "precision", "map", "hit"))
        click.echo(f"{split} {metrics_line(metrics, keys)}")


@click.command()
@run_dir_argument
@click.option("--user", "users", type=int, multiple=True, required=True, help="user id (repeatable)")
@click.option("--k", type=int, default=20, show_default=True)
@device_option
@click.option("--json", "as_json", is_flag=True)
def recommend(run_dir, users, k, device, as_json) -> None:
    """Top-K items for users, excluding items they already interacted with in train."""
    if k < 1:
        raise InputError(f"--k {k}: must be at least 1")
    ckpt = load_data_and_model(run_dir, device=device)
    n_users, n_items = ckpt.data.n_users, ckpt.data.n_items
    bad = [u for u in users if not 0 <= u < n_users]  # before numpy: an id past int64 would overflow
    if bad:
        raise InputError(f"--user {bad[0]}: unknown user id (valid: 0..{n_users - 1})")
    ids = np.asarray(users, dtype=np.int64)
    unseen = n_items - np.diff(ckpt.data.train.indptr)[ids]  # items each user has not trained on
    if k > int(unseen.max()):
        click.echo(f"note: --k {k} capped at {int(unseen.max())}, the most items any of these users has "
                   f"not seen in train", err=True)
    k_eff = min(k, int(unseen.max()))
    user_emb, item_emb = ckpt.model.final_embeddings()
    top = top_k(user_emb, item_emb, ids, k_eff, split_mask(ckpt.data.train))
    scores = (user_emb[torch.as_tensor(ids)][:, None, :] * item_emb[torch.as_tensor(top)]).sum(-1)
    result = {int(u): [{"item": int(i), "score": round(float(s), 6)}
                       for i, s in zip(row[:n], srow[:n], strict=True)]  # never a training item
              for u, row, srow, n in zip(ids, top, scores.cpu().numpy(), np.minimum(unseen, k_eff), strict=True)}
    if as_json:
        echo_json(result)
        return
    for u, recs in result.items():
        click.echo(f"user {u}: " + " ".join(str(r["item"]) for r in recs))


COMMANDS = [train, evaluate, recommend]
