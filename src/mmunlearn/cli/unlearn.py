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


def _source_data(dataset: str | None, run_dir: Path | None):
    """The data a request is sampled from: a named dataset, or a run's (e.g. an unlearned child's)."""
    if (dataset is None) == (run_dir is None):
        raise InputError("give exactly one of --dataset or --checkpoint")
    if run_dir is not None:
        from mmunlearn.workflow.runner import load_run

        return load_run(run_dir).data
    from mmunlearn.data.registry import load_dataset

    return load_dataset(dataset)


@forget_group.command("sample")
@click.option("--dataset", default=None, help="baby (embedded), synthetic, movielens-100k, or a folder/.inter path")
@click.option("--checkpoint", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="sample from the data of this run instead (e.g. an already unlearned one)")
@click.option("--regime", type=click.Choice(REGIMES), required=True, help="what a request deletes")
@click.option("--ratio", type=float, default=0.05, show_default=True, help="share of users/items/pairs")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--selection", type=click.Choice(SELECTIONS), default="random", show_default=True,
              help="user/item selection: random, core (most active first), edge (least active first)")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="request JSON")
def forget_sample(dataset, run_dir, regime, ratio, seed, selection, out) -> None:
    """Sample a seeded forget request and write it as JSON (with its content hash)."""
    data = _source_data(dataset, run_dir)
    req = sample_request(data, regime, ratio=ratio, seed=seed, selection=selection)
    save_request(out, req)
    click.echo(f"{req.describe()} from {data.name}")
    click.echo(f"wrote {out}")


@forget_group.command("sequence")
@click.option("--dataset", default=None, help="baby (embedded), synthetic, movielens-100k, or a folder/.inter path")
@click.option("--checkpoint", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="sample from the data of this run instead (the checkpoint a stream starts from)")
@click.option("--regime", type=click.Choice(REGIMES), default="interaction", show_default=True)
@click.option("--n", "n", type=int, required=True, help="number of requests")
@click.option("--ratio", type=float, default=0.01, show_default=True,
              help="share of the *remaining* users/items/pairs each request deletes")
@click.option("--seed", type=int, default=0, show_default=True, help="request k uses seed + k")
@click.option("--selection", type=click.Choice(SELECTIONS), default="random", show_default=True)
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="a folder (000.json, 001.json, ...) or a .jsonl file (one request per line)")
def forget_sequence(dataset, run_dir, regime, n, ratio, seed, selection, out) -> None:
    """Sample N requests in arrival order, each on the data left after the previous ones."""
    import json

    from mmunlearn.data.requests import sample_sequence
    from mmunlearn.io import atomic_write_text

    data = _source_data(dataset, run_dir)
    reqs = sample_sequence(data, regime, n, ratio=ratio, seed=seed, selection=selection)
    out = Path(out)
    if out.suffix == ".jsonl":
        atomic_write_text(out, "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in reqs))
    else:
        for k, r in enumerate(reqs):
            save_request(out / f"{k:03d}.json", r)
    click.echo(f"{n} {regime} requests of {ratio:g} each ({sum(len(r.pairs) + len(r.users) + len(r.items) for r in reqs)} "
               f"ids/pairs in all) from {data.name}")
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
              help="a registered method: `mmunlearn methods` lists them with their settings")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="child run folder")
@click.option("--device", default="cpu", show_default=True, help="torch device: cpu or cuda")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML/JSON whose [unlearn] section overrides the method's config")
@click.option("--set", "sets", multiple=True, help="method config override key=value (e.g. lr=0.5)")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--select", is_flag=True, help="choose hyper-parameters with the retrain-free rule (valid + proxy)")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads")
@click.option("--force", is_flag=True, help="redo a request already in the ledger / overwrite --out")
def unlearn_cmd(run_dir, request_path, method, out, device, config_file, sets, seed, select, threads, force) -> None:
    """Unlearn a request from a checkpoint into a new run folder; record it in the parent's ledger."""
    from mmunlearn.unlearn.base import method_names
    from mmunlearn.workflow.runner import unlearn_checkpoint

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


@click.command("methods")
@click.option("--json", "as_json", is_flag=True, help="print as JSON")
def methods_cmd(as_json) -> None:
    """List the registered unlearning methods, what each does and what --select searches."""
    from mmunlearn.cli.common import echo_json
    from mmunlearn.unlearn.base import METHODS, method_names

    names = method_names()
    if as_json:
        echo_json({n: {"summary": METHODS[n].summary, "preset": METHODS[n].preset,
                       "search": {k: list(v) for k, v in METHODS[n].search.items()}} for n in names})
        return
    for name in names:
        spec = METHODS[name]
        search = ", ".join(f"{k} in {list(v)}" for k, v in spec.search.items()) or "nothing (one configuration)"
        click.echo(f"{name}: {spec.summary}")
        click.echo(f"    --select searches: {search}")


COMMANDS = [forget_group, unlearn_cmd, methods_cmd]
