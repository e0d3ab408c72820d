"""Every numeric setting carries its range in its ``option`` and ``config.build`` enforces it on every layer."""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmunlearn.config import build, load_config_file, option
from mmunlearn.errors import InputError
from mmunlearn.models.registry import MODELS
from mmunlearn.pipeline import DataSpec
from mmunlearn.train.trainer import TrainConfig
from mmunlearn.unlearn.base import METHODS


def _config_classes() -> list[type]:
    import mmunlearn.unlearn  # noqa: F401  (registers the methods)
    from mmunlearn.bench.grid import GridConfig
    from mmunlearn.unlearn.targets import TargetConfig

    classes = [TrainConfig, DataSpec, GridConfig, TargetConfig, *(cfg for _, cfg in MODELS.values())]
    classes += [spec.config_cls for spec in METHODS.values()]
    return list(dict.fromkeys(classes))


@dataclass(frozen=True)
class _Demo:
    n: int = option(3, "a count", gt=0)
    share: float = option(0.5, "a share", ge=0, le=1)
    widths: tuple[int, ...] = option((1, 2), "widths", gt=0)
    mode: str = option("a", "a mode", choices=("a", "b"))


@pytest.mark.parametrize("cls", _config_classes(), ids=lambda c: c.__name__)
def test_every_numeric_setting_is_bounded_and_its_default_is_valid(cls) -> None:
    import typing

    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        numeric = hints[f.name] in (int, float, int | None, float | None)
        if numeric and not f.name.endswith("seed_offset"):
            assert "bounds" in f.metadata, f"{cls.__name__}.{f.name} has no range"
        if f.default is not MISSING:
            build(cls, ("defaults", {f.name: f.default}))  # a default never violates its own range


@given(st.integers(max_value=0))
def test_counts_at_or_below_zero_are_refused(n: int) -> None:
    with pytest.raises(InputError, match=r"_Demo.n must be > 0"):
        build(_Demo, ("--set", {"n": n}))


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_floats_outside_the_range_or_not_finite_are_refused(x: float) -> None:
    if math.isfinite(x) and 0 <= x <= 1:
        assert build(_Demo, ("--set", {"share": x})).share == x
    else:
        with pytest.raises(InputError, match="_Demo.share"):
            build(_Demo, ("--set", {"share": x}))


def test_tuples_are_checked_element_wise_and_choices_enforced() -> None:
    with pytest.raises(InputError, match="widths must be > 0"):
        build(_Demo, ("cfg.toml", {"widths": [4, 0]}))
    with pytest.raises(InputError, match="must be one of"):
        build(_Demo, ("cfg.toml", {"mode": "c"}))


@pytest.mark.parametrize("key, value", [("epochs", 0), ("batch_size", 0), ("lr", -1.0), ("lr", float("nan")),
                                        ("threads", 0), ("threads", -2), ("device", "nosuch")])
def test_train_settings_from_the_issue_are_refused(key, value) -> None:
    with pytest.raises(InputError, match=f"TrainConfig.{key}") as exc:
        build(TrainConfig, ("command line", {key: value}))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("model, key, value", [("lightgcn", "dim", -4), ("lightgcn", "n_layers", 0),
                                               ("lightgcn", "reg_weight", -1e-4), ("mgcn", "knn_k", 0),
                                               ("miggt", "feat_dropout", 1.0)])
def test_model_settings_are_refused(model, key, value) -> None:
    with pytest.raises(InputError, match=key):
        build(MODELS[model][1], ("--set", {key: value}))


def test_config_file_that_is_not_utf8_or_not_a_table(tmp_path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_bytes(b"[train]\nepochs = 1 # \xff\n")
    with pytest.raises(InputError, match="not UTF-8"):
        load_config_file(bad)
    lst = tmp_path / "c.json"
    lst.write_text("[1, 2]")
    with pytest.raises(InputError, match="table of sections"):
        load_config_file(lst)
