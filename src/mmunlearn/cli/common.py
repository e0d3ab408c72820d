"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mmunlearn.errors import InputError
from mmunlearn.io import dumps


def parse_sets(values: tuple[str, ...], flag: str = "--set") -> dict[str, Any]:
    """``key=value`` pairs, values parsed as JSON where possible (numbers, booleans, lists)."""
    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise InputError(f"{flag} {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "+inf", "-inf", "infinity"):
            value = float(value)  # so the config's range check names it as a number, not a bad type
        out[key.strip()] = value
    return out


def echo_json(obj: Any) -> None:
    click.echo(dumps(obj, indent=2))


def metrics_line(metrics: dict[str, float], keys: tuple[str, ...] = ("recall@20", "ndcg@20", "precision@20",
                                                                     "map@20", "hit@20")) -> str:
    return "  ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)


run_dir_argument = click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
device_option = click.option("--device", default="cpu", show_default=True, help="torch device: cpu or cuda")
