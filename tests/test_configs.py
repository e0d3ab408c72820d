"""The shipped ``configs/*.toml`` files: each one loads and validates, and each grid trains its
originals and Retrains exactly as the training config it names (the benchmark's rows rely on it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmunlearn.bench.grid import file_layer, grid_config
from mmunlearn.config import build, load_config_file
from mmunlearn.models.registry import MODELS, model_config
from mmunlearn.pipeline import DataSpec
from mmunlearn.train.trainer import TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
GRID_FILES = sorted(CONFIGS.glob("grid-*.toml"))
TRAIN_FILES = sorted(set(CONFIGS.glob("*.toml")) - set(GRID_FILES))
#: the training settings a grid shares with its training config
SHARED_TRAIN_KEYS = ("lr", "batch_size", "epochs", "min_epochs", "patience", "eval_every")


def test_configs_are_shipped() -> None:
    assert GRID_FILES and TRAIN_FILES


@pytest.mark.parametrize("path", TRAIN_FILES, ids=lambda p: p.name)
def test_training_config_builds(path: Path) -> None:
    raw = load_config_file(path)
    name = raw["model"]["name"]
    assert name in MODELS
    model_config(name, (str(path), {k: v for k, v in raw["model"].items() if k != "name"}))
    tcfg = build(TrainConfig, (str(path), raw.get("train", {})))
    spec = build(DataSpec, (str(path), raw.get("data", {})))
    assert tcfg.epochs >= tcfg.min_epochs and spec.dataset


def training_config_of(backbone: str, dataset: str) -> Path:
    """``<backbone>-<dataset>.toml``; datasets without their own (Sports, Clothing) train as on Baby."""
    own = CONFIGS / f"{backbone}-{dataset}.toml"
    return own if own.exists() else CONFIGS / f"{backbone}-baby.toml"


@pytest.mark.parametrize("name", ["grid-baby-mgcn.toml", "grid-baby-miggt.toml"])
def test_the_baby_grids_are_the_full_issue_grid(name: str) -> None:
    cfg = grid_config(file_layer(CONFIGS / name))
    dataset, backbone = name.removesuffix(".toml").split("-")[1:]
    assert cfg.datasets == (dataset,) and cfg.backbones == (backbone,)
    assert len(cfg.seeds) >= 3 and set(cfg.regimes) == {"user", "item", "interaction"}


@pytest.mark.parametrize("path", GRID_FILES, ids=lambda p: p.name)
def test_grid_matches_its_training_config(path: Path) -> None:
    cfg = grid_config(file_layer(path))
    for dataset in cfg.datasets:
        for backbone in cfg.backbones:
            train_file = training_config_of(backbone, dataset)
            train = build(TrainConfig, ("defaults", {"lr": MODELS[backbone][0].recommended_lr}),
                          (str(train_file), load_config_file(train_file).get("train", {})))
            for key in SHARED_TRAIN_KEYS:
                grid_value = getattr(cfg, key)
                expected = getattr(train, key)
                assert (expected if grid_value is None else grid_value) == expected, \
                    f"{path.name} ({train_file.name}): {key}"
