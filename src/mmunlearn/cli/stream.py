"""``mmunlearn stream``: apply a sequence of forget requests one after another (resumable)."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from mmunlearn.cli.common import parse_sets
from mmunlearn.errors import InputError


@click.command("stream")
@click.option("--checkpoint", "run_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="run folder of the model the stream starts from (never modified)")
@click.option("--requests", "requests", type=click.Path(path_type=Path), required=True,
              help="a folder of request JSON files (applied in name order) or a JSONL file (line order); "
                   "`mmunlearn forget sequence` writes either")
@click.option("--method", default="tru", show_default=True, help="unlearning method of every step")
@click.option("--reconcile-every", type=int, default=0, show_default=True,
              help="reconcile exactly at every N-th step: Retrain, or for a sharded model the shards its "
                   "deletions touched (0 = never on a schedule)")
@click.option("--drift-budget", type=float, default=0.0, show_default=True,
              help="reconcile a step when |proxy gap over all deletions since the last exact model| exceeds "
                   "this (0 = never)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="stream folder: steps/, stream.json (rerun the same command to resume)")
@click.option("--set", "sets", multiple=True, help="method config override key=value")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--select", is_flag=True, help="choose each step's hyper-parameters with the retrain-free rule")
@click.option("--device", default="cpu", show_default=True, help="torch device: cpu or cuda")
@click.option("--threads", type=int, default=None, help="torch threads")
def stream_cmd(run_dir, requests, method, reconcile_every, drift_budget, out, sets, seed, select, device,
               threads) -> None:
    """Unlearn a stream of requests: each child becomes the next parent; drift is tracked after every
    step and reconciled exactly on a schedule or a drift budget (Retrain; on a sharded model only the
    shards that the deletions since the last exact model touched). Resumes after a crash."""
    from mmunlearn.stream import StreamConfig, run_stream

    if threads:
        torch.set_num_threads(threads)
    if Path(out).resolve() == Path(run_dir).resolve():
        raise InputError(f"--out {out}: must differ from the checkpoint folder")
    overrides = tuple(sorted(parse_sets(sets).items()))
    cfg = StreamConfig(method=method, reconcile_every=reconcile_every, drift_budget=drift_budget, seed=seed,
                       device=device, select=select, overrides=overrides)
    state = run_stream(run_dir, requests, out, cfg, echo=click.echo)
    n_rec = sum(1 for s in state["steps"] if s["reconciled"])
    click.echo(f"done: {len(state['steps'])} requests, {n_rec} reconciliation(s); final model {state['parent']}")


COMMANDS = [stream_cmd]
