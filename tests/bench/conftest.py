"""Tiny grids for the benchmark tests: synthetic data, LightGCN, 2 epochs, small audits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

#: a grid that runs in seconds: 200 synthetic users, 1-layer LightGCN, 2 epochs, cheap audits
TINY: dict[str, Any] = {
    "datasets": ["synthetic"], "backbones": ["lightgcn"], "regimes": ["user"], "methods": ["rebuild"],
    "seeds": [0], "user_subsample": 200, "epochs": 2, "select": False, "mia_max_pairs": 800,
    "user_attack_mf_dim": 8, "user_attack_k": 20, "model_sets": ["lightgcn.n_layers=1"],
}


def tiny_config(**over: Any):
    from mmunlearn.bench.grid import grid_config

    return grid_config(("tiny", {**TINY, **over}))


def write_toml(path: Path, **over: Any) -> Path:
    """The tiny grid as a ``[grid]`` TOML file (model overrides as a [model.lightgcn] table)."""
    cfg = {**TINY, **over}
    lines = ["[grid]"]
    for key, value in cfg.items():
        if key == "model_sets":
            continue
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, list):
            lines.append(f"{key} = [" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in value) + "]")
        else:
            lines.append(f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"')
    lines += ["[model.lightgcn]", "n_layers = 1"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
